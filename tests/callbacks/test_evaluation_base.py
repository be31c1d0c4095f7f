"""EvaluationCallback's shared machinery: exact sharding, cache, DataLoader workers, fast_dev_run, reports."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import TensorDataset

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, CalibrationEvaluation
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN
from robustlit.utils import distributed

CPU = torch.device("cpu")


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


def dataset(n: int = 45) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def test_map_sharded_deals_whole_batches_and_any_world_size_gives_the_same_columns(monkeypatch) -> None:
    def fn(batch_id: int, indices: list[int]) -> dict[str, torch.Tensor]:
        return {"value": torch.tensor(indices) * 10 + batch_id, "pair": torch.tensor([[i, -i] for i in indices])}

    single = distributed.map_sharded(11, 4, fn)
    assert single["value"].tolist() == [10 * i + i // 4 for i in range(11)]
    assert single["index"].tolist() == list(range(11))
    parts = []
    for rank in range(3):  # three simulated ranks, each gathering only its own rows
        monkeypatch.setattr(distributed, "world", lambda rank=rank: (rank, 3))
        monkeypatch.setattr(distributed, "gather_rows", lambda local, n: local)
        parts.append(distributed.map_sharded(11, 4, fn))
    assert [[int(r["index"][0]) for r in part] for part in parts] == [[0], [4], [8]]
    monkeypatch.undo()
    merged = distributed.gather_rows(parts[2] + parts[0] + parts[1], 11)
    assert all(torch.equal(merged[k], single[k]) for k in single)
    with pytest.raises(RuntimeError, match="exactly 0..10"):
        distributed.gather_rows(parts[0] + parts[1], 11)  # a missing batch is caught, never silently dropped


def test_map_dataset_reads_each_batch_once_in_index_order_and_skips_what_the_caller_has() -> None:
    """The reading shared by the evaluation callbacks and AR-AdaLS's scoring: batch b holds items [4b, 4b + 4)."""
    data = dataset(11)
    seen: list[int] = []

    def fn(batch_id: int, indices: list[int], batch: object) -> dict[str, torch.Tensor]:
        if batch is None:  # skipped: the caller supplies the row (here: minus the labels, to tell it apart)
            return {"y": -data.tensors[1][indices]}
        seen.append(batch_id)
        assert torch.equal(batch[0], data.tensors[0][indices])
        return {"y": batch[1]}

    columns = distributed.map_dataset(data, 11, 4, fn, skip={1})
    assert seen == [0, 2] and columns["index"].tolist() == list(range(11))
    expected = data.tensors[1].clone()
    expected[4:8] *= -1
    assert torch.equal(columns["y"], expected)


def test_cache_reuses_finished_batches(tmp_path: Path, monkeypatch) -> None:
    net, data = model(), dataset()
    spec = AttackSpec(name="pgd", eps=0.1, steps=3, step_size=0.05)
    callback = AdversarialEvaluation([spec], num_examples=None, batch_size=16, cache_dir=str(tmp_path))
    first = callback.evaluate(net, data, 10, (0.0, 1.0), CPU)
    assert len(list(tmp_path.rglob("batch*.pt"))) == 3  # 45 examples in batches of 16
    calls: list[int] = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x: (calls.append(len(x)), forward(x))[1])
    again = callback.evaluate(net, data, 10, (0.0, 1.0), CPU)
    assert again == first and calls == []  # everything from the cache, nothing recomputed
    with torch.no_grad():
        net[1].bias.add_(1.0)  # other weights: another fingerprint, so the cache does not apply
    callback.evaluate(net, data, 10, (0.0, 1.0), CPU)
    assert calls and len(list(tmp_path.rglob("batch*.pt"))) == 6


def test_cache_folder_names_hold_fractions_and_many_attacks(tmp_path: Path) -> None:
    """A radius written 8/255 is not a folder separator, and ten attacks named with their settings (step size,
    no random start, loss) still give one folder name of at most 255 bytes, distinct for distinct attack lists."""
    net = model()

    def leaf(specs: list[AttackSpec]) -> Path:
        callback = AdversarialEvaluation(specs, num_examples=None, batch_size=16, cache_dir=str(tmp_path))
        return callback._cache_root(net, 45, "-".join(s.metric_name for s in specs))

    fraction = leaf([AttackSpec(name="pgd", eps="8/255", steps=3)])
    assert fraction.parent.parent.parent == tmp_path and fraction.name.endswith("pgd3_linf_8over255")
    many = [
        AttackSpec(name="native_pgd", eps="8/255", steps=k, step_size=0.001 * k, random_start=False, loss="margin")
        for k in range(1, 11)
    ]
    names = {leaf(many).name, leaf(many[:-1] + [AttackSpec(name="native_pgd", eps="8/255", steps=11)]).name}
    assert len(names) == 2 and all(len(name.encode()) <= 255 for name in names)
    folder = leaf(many)
    folder.mkdir(parents=True)  # the file system accepts it
    assert folder.is_dir()


def test_dataloader_workers_change_nothing() -> None:
    net, data = model(), dataset()
    options = dict(batch_size=8, shifts=["gaussian_noise"], severities=[3], seed=2, print_table=False)
    in_process = CalibrationEvaluation(**options).evaluate(net, data, (0.0, 1.0), CPU)
    workers = CalibrationEvaluation(num_workers=2, **options).evaluate(net, data, (0.0, 1.0), CPU)
    assert workers == in_process
    with pytest.raises(ValueError, match="num_workers"):
        CalibrationEvaluation(num_workers=-1)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [({"fast_dev_run": True}, 32), ({"limit_val_batches": 2}, 64), ({"limit_val_batches": 0.5}, 135), ({}, 270)],
)
def test_trainer_limits_and_fast_dev_run_bound_the_examples(tmp_path: Path, limits: dict, expected: int) -> None:
    module = Standard(backbone=SmallCNN(10, 1, width=8, hidden=16), mean=(0.3,), std=(0.38,))
    callback = CalibrationEvaluation(batch_size=32, print_table=False)  # num_examples=None: all 270
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        **limits,
    )
    trainer.validate(module, DigitsDataModule())
    assert callback.results["val"]["num_examples"] == expected
