"""Corrupt checkpoints are refused on load, by the CLI (``--ckpt_path``) and by ``robustlit.load_classifier``,
with a message naming the file (and the tensor); random bytes are called corrupt, without torch's
``weights_only=False`` hint; checkpoints are written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from fault_runs import record
from harness import CONFIGS, load, shrink, write

import robustlit
from robustlit.cli import main
from robustlit.utils.checkpoint_io import AtomicCheckpointIO
from robustlit.utils.integrity import CHECKSUM_KEY, weights_checksum


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, last.ckpt) of a shrunk digits Standard run."""
    tmp = tmp_path_factory.mktemp("integrity")
    config = shrink(load(CONFIGS / "digits" / "standard.yaml"), tmp)
    config["test_after_fit"] = False
    path = write(config, tmp / "standard.yaml")
    main(["fit", "--config", str(path)])
    return path, tmp / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt"


def _write_random_bytes_into_a_weight(ckpt: Path, target: Path) -> str:
    """Copy ``ckpt`` to ``target`` with random bytes written over the first weight tensor (the stored
    checksum kept, as a disk or transfer error would leave it); returns the tensor's name."""
    checkpoint = torch.load(ckpt, weights_only=False)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and v.numel() > 8)
    tensor = checkpoint["state_dict"][name]
    raw = tensor.view(-1).view(torch.uint8)
    raw[:16] = torch.randint(0, 256, (16,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save(checkpoint, target)
    return name


def test_checkpoints_carry_a_checksum_of_their_weights(trained: tuple[Path, Path]) -> None:
    checkpoint = torch.load(trained[1], weights_only=True)  # also: loadable without unpickling objects
    assert checkpoint[CHECKSUM_KEY] == weights_checksum(checkpoint["state_dict"])
    model = robustlit.load_classifier(trained[1])
    assert torch.isfinite(model(torch.rand(2, 1, 8, 8))).all()


def test_random_bytes_in_a_weight_are_refused_by_load_classifier_and_the_cli(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.ckpt"
    name = _write_random_bytes_into_a_weight(trained[1], corrupt)
    with pytest.raises(robustlit.CheckpointError) as from_api:
        robustlit.load_classifier(corrupt)
    with pytest.raises(robustlit.CheckpointError) as from_cli:
        main(["test", "--config", str(trained[0]), "--ckpt_path", str(corrupt)])
    record(
        fault=f"16 random bytes written into weight `{name}` of a digits checkpoint (checksum left as stored)",
        happened="`load_classifier` and `robustlit test --ckpt_path` both refused it before any forward pass",
        handled=f"CheckpointError: `{str(from_cli.value).replace(str(tmp_path), '<tmp>')[:110]}...` (sha256 over the "
        "state_dict, stored by "
        "`RobustClassifier.on_save_checkpoint`)",
    )
    for error in (from_api.value, from_cli.value):
        assert str(corrupt) in str(error) and "checksum" in str(error)


def test_a_nan_weight_is_refused_naming_the_tensor(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = torch.load(trained[1], weights_only=False)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and v.numel() > 8)
    checkpoint["state_dict"][name].view(-1)[3] = float("nan")
    checkpoint[CHECKSUM_KEY] = weights_checksum(checkpoint["state_dict"])  # a run that diverged, then saved
    nan_ckpt = tmp_path / "nan.ckpt"
    torch.save(checkpoint, nan_ckpt)
    with pytest.raises(robustlit.CheckpointError, match="non-finite weights") as from_api:
        robustlit.load_classifier(nan_ckpt)
    with pytest.raises(robustlit.CheckpointError, match="non-finite weights") as from_cli:
        main(["test", "--config", str(trained[0]), "--ckpt_path", str(nan_ckpt)])
    for error in (from_api.value, from_cli.value):
        assert str(nan_ckpt) in str(error) and f"{name} (1 values)" in str(error)


def test_random_bytes_as_a_checkpoint_are_called_corrupt_without_the_unsafe_hint(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(robustlit.CheckpointError) as from_cli:
        main(["test", "--config", str(trained[0]), "--ckpt_path", str(garbage)])
    with pytest.raises(robustlit.CheckpointError) as from_api:
        robustlit.load_classifier(garbage)
    message = str(from_cli.value)
    record(
        fault="`robustlit test --ckpt_path` of a file of 4096 random bytes",
        happened=f"refused: `{message.replace(str(tmp_path), '<tmp>')[:120]}...`",
        handled="`AtomicCheckpointIO.load_checkpoint` (added by the CLI) turns torch's error into a CheckpointError "
        "naming the file; torch's advice to retry with `weights_only=False` is not passed on (nor chained)",
    )
    for error in (from_cli.value, from_api.value):
        assert str(garbage) in str(error) and "corrupt" in str(error)
        assert "weights_only=False" not in str(error) and "weights_only` set to `False" not in str(error)
        assert error.__cause__ is None and error.__suppress_context__


def test_checkpoint_writes_are_atomic_and_leave_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    old_inode = target.stat().st_ino
    io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    # a new file renamed over the old one (os.replace), not the old file rewritten in place
    assert target.stat().st_ino != old_inode
    assert torch.equal(io.load_checkpoint(target)["state_dict"]["w"], torch.zeros(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def _flip_exponent_bits(tensor: torch.Tensor, count: int = 4) -> None:
    """Flip bit 30 (the top exponent bit of a float32) of the first ``count`` values, in place."""
    bits = tensor.view(-1)[:count].view(torch.int32)
    bits ^= 1 << 30


def test_bits_flipped_in_the_optimizer_moments_are_refused_before_a_resume(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 23, case 3: the checksum used to cover the weights only; a resume from a checkpoint with flipped bits
    in Adam's moments trained on (train/loss 1801.7 against 2.19) and wrote a checkpoint with a valid checksum."""
    checkpoint = torch.load(trained[1], weights_only=False)
    moments = next(s for s in checkpoint["optimizer_states"][0]["state"].values())
    name = next(k for k, v in moments.items() if isinstance(v, torch.Tensor) and v.numel() >= 4)
    _flip_exponent_bits(moments[name])
    corrupt = tmp_path / "adam.ckpt"
    torch.save(checkpoint, corrupt)
    before = sorted(trained[0].parent.rglob("*.ckpt"))
    with pytest.raises(robustlit.CheckpointError) as from_cli:
        main(["fit", "--config", str(trained[0]), "--ckpt_path", str(corrupt), "--trainer.max_epochs", "2"])
    with pytest.raises(robustlit.CheckpointError) as from_api:
        robustlit.load_classifier(corrupt)
    record(
        fault=f"exponent bits flipped in 4 values of the optimizer's `{name}` in `last.ckpt` (checksums left as "
        "stored), then `fit --ckpt_path`",
        happened="refused before anything was restored (before: the resumed run trained on from the corrupt moments, "
        "train/loss 1801.7 vs 2.19, and wrote a new checkpoint with a fresh, valid weight checksum)",
        handled="`robustlit_state_sha256`: one SHA-256 per checkpoint entry (optimizer, schedulers, loops, callbacks, "
        "hyperparameters), verified by `AtomicCheckpointIO.load_checkpoint`, the module's `on_load_checkpoint` and "
        f"`load_classifier`: `{str(from_cli.value).replace(str(tmp_path), '<tmp>')[:90]}...`",
    )
    for error in (from_cli.value, from_api.value):
        assert str(corrupt) in str(error) and "optimizer_states" in str(error)
    assert sorted(trained[0].parent.rglob("*.ckpt")) == before  # nothing was trained from it


def test_a_changed_loop_counter_or_scheduler_is_refused_too(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = torch.load(trained[1], weights_only=False)
    checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] += 1
    changed = tmp_path / "loops.ckpt"
    torch.save(checkpoint, changed)
    with pytest.raises(robustlit.CheckpointError, match="loops"):
        main(["fit", "--config", str(trained[0]), "--ckpt_path", str(changed), "--trainer.max_epochs", "2"])
