"""The Certification callback packs several examples into shared forward passes (same TSV as one at a time)
and certifies in bfloat16 only when asked, saying so above the TSV header (docs/speed.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from smoothing_helpers import digits, trained_linear_smoothing
from torch import nn
from torch.utils.data import TensorDataset

from robustlit.callbacks.certification import Certification
from robustlit.certify import TSV_HEADER, read_rows
from robustlit.utils.finite import NonFiniteOutputError

#: n0 + n = 120 samples per example: a batch of 1000 holds 8 examples
SMALL = {"n0": 20, "n": 100, "failure_prob": 0.001, "batch_size": 1000, "print_table": False}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_linear_smoothing()


def _without_time(path: Path) -> dict:
    return {i: (r.label, r.predict, r.radius, r.correct) for i, r in read_rows(path).items()}


class _CountingPasses(nn.Module):
    """Counts forward passes and records the dtype of the logits of each."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.passes: list[tuple[int, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        self.passes.append((x.shape[0], logits.dtype))
        return logits


def test_packed_rows_equal_one_at_a_time_with_fewer_passes(model: nn.Module, tmp_path: Path) -> None:
    data = digits().test_dataset
    one = _CountingPasses(model.classifier)
    Certification(num_examples=20, examples_per_pass=1, **SMALL).certify_dataset(
        one, model.sigma_fn, data, (0.0, 1.0), tmp_path / "one.tsv"
    )
    packed = _CountingPasses(model.classifier)
    callback = Certification(num_examples=20, **SMALL)
    assert callback.group_size() == 8  # automatic: 1000 // (20 + 100)
    summary = callback.certify_dataset(packed, model.sigma_fn, data, (0.0, 1.0), tmp_path / "packed.tsv")

    assert _without_time(tmp_path / "packed.tsv") == _without_time(tmp_path / "one.tsv")
    assert sorted(read_rows(tmp_path / "packed.tsv")) == list(range(20))
    assert len(one.passes) == 2 * 20  # one selection and one estimation pass per example
    assert len(packed.passes) == 3  # groups of 8, 8 and 4 examples, one pass each
    assert max(size for size, _ in packed.passes) == 8 * 120
    assert summary["computed"] == 20 and 0.4 < summary["certified_acc"][0.0] <= 1.0


def test_a_packed_run_resumes_group_by_group(model: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = digits().test_dataset
    callback = Certification(num_examples=12, examples_per_pass=4, **SMALL)
    callback.certify_dataset(model.classifier, model.sigma_fn, data, (0.0, 1.0), tmp_path / "full.tsv")

    original = Certification._certify_group
    groups: list[list[int]] = []

    def interrupted(self: Certification, smoothed: object, dataset: object, group: list[int]):  # noqa: ANN202
        if len(groups) == stop_after:
            raise KeyboardInterrupt
        groups.append(list(group))
        yield from original(self, smoothed, dataset, group)

    monkeypatch.setattr(Certification, "_certify_group", interrupted)
    path = tmp_path / "resumed.tsv"
    stop_after = 2
    with pytest.raises(KeyboardInterrupt):
        callback.certify_dataset(model.classifier, model.sigma_fn, data, (0.0, 1.0), path)
    assert sorted(read_rows(path)) == list(range(8))
    groups.clear()
    stop_after = -1
    resumed = callback.certify_dataset(model.classifier, model.sigma_fn, data, (0.0, 1.0), path)
    assert groups == [[8, 9, 10, 11]] and (resumed["computed"], resumed["resumed"]) == (4, 8)
    assert _without_time(path) == _without_time(tmp_path / "full.tsv")


def test_a_nan_in_a_packed_group_names_the_example_and_keeps_the_rows_before(model: nn.Module, tmp_path: Path) -> None:
    x, y = digits().test_dataset.tensors
    x = x[:8].clone()
    x[5] = 1.0  # a white image: its noisy copies have a mean pixel near 1 (the digits' is about 0.3)

    class NaNOnExampleFive(nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            logits = model.classifier(inputs)
            white = inputs.flatten(1).mean(1) > 0.8
            return torch.where(white[:, None], torch.full_like(logits, float("nan")), logits)

    data = TensorDataset(x, y[:8])
    path = tmp_path / "nan.tsv"
    with pytest.raises(NonFiniteOutputError, match="dataset index 5"):
        Certification(num_examples=8, examples_per_pass=8, **SMALL).certify_dataset(
            NaNOnExampleFive(), model.sigma_fn, data, (0.0, 1.0), path
        )
    assert sorted(read_rows(path)) == [0, 1, 2, 3, 4]


def test_fp32_by_default_even_under_autocast_and_bf16_only_when_asked(model: nn.Module, tmp_path: Path) -> None:
    data = digits().test_dataset
    fp32 = _CountingPasses(model.classifier)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what a bf16-mixed Trainer would leave around
        Certification(num_examples=8, **SMALL).certify_dataset(
            fp32, model.sigma_fn, data, (0.0, 1.0), tmp_path / "fp32.tsv"
        )
    assert {dtype for _, dtype in fp32.passes} == {torch.float32}
    assert (tmp_path / "fp32.tsv").read_text().splitlines()[0] == TSV_HEADER  # exactly Cohen et al.'s format

    bf16 = _CountingPasses(model.classifier)
    callback = Certification(num_examples=8, precision="bf16", **SMALL)
    summary = callback.certify_dataset(bf16, model.sigma_fn, data, (0.0, 1.0), tmp_path / "bf16.tsv")
    assert {dtype for _, dtype in bf16.passes} == {torch.bfloat16}
    lines = (tmp_path / "bf16.tsv").read_text().splitlines()
    assert lines[0].startswith("# precision: bf16") and "bfloat16 classifier" in "\n".join(lines[:2])
    assert lines[2] == TSV_HEADER and sorted(read_rows(tmp_path / "bf16.tsv")) == list(range(8))
    assert summary["settings"]["precision"] == "bf16"
    assert "precision" not in Certification(**SMALL).settings(model.sigma_fn)
    name = "certify_test_sigma0.25"
    assert callback.default_file_name("test", model.classifier, model.sigma_fn) != Certification(
        **SMALL
    ).default_file_name("test", model.classifier, model.sigma_fn)
    assert callback.default_file_name("test", model.classifier, model.sigma_fn).startswith(name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"examples_per_pass": 0}, "examples_per_pass must be"), ({"precision": "fp16"}, "precision must be")],
)
def test_bad_packing_and_precision_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Certification(**kwargs)
