"""Certification that packs the noise of several images into one forward pass (docs/speed.md) gives the TSV
rows and certificates of the one-image path with the same seeds, in fewer forward passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from robustlit.certify.report import CertificationRow, CertificationWriter
from robustlit.certify.sigma import ConstantSigma, KNNSigma, SigmaFunction
from robustlit.certify.smoothing import ABSTAIN, SmoothedClassifier
from robustlit.models import SmallCNN

SEED = 0


class CountingModel(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.passes = inner, 0

    def forward(self, x: Tensor) -> Tensor:
        self.passes += 1
        return self.inner(x)


def _generator(idx: int) -> torch.Generator:
    # the per-example seeding of robustlit.callbacks.Certification (seed + 1_000_003 * idx)
    return torch.Generator().manual_seed(SEED + 1_000_003 * idx)


def _rows(results: list, labels: list[int]) -> list[str]:
    rows = []
    for idx, (result, label) in enumerate(zip(results, labels, strict=True)):
        correct = int(result.prediction == label and result.prediction != ABSTAIN)
        rows.append(CertificationRow(idx, label, result.prediction, result.radius, correct, 0.0))
    return [row.to_line() for row in rows]


@pytest.mark.parametrize("sigma_kind", ["constant", "input_dependent"])
def test_packed_certification_equals_one_image_path(tmp_path: Path, sigma_kind: str) -> None:
    torch.manual_seed(0)
    model = CountingModel(SmallCNN(4, 1, width=4, hidden=16)).eval()
    xs = torch.rand(7, 1, 8, 8)
    labels = [int(v) for v in torch.randint(0, 4, (7,))]
    sigma: SigmaFunction = (
        ConstantSigma(0.12) if sigma_kind == "constant" else KNNSigma(0.12, 0.05, torch.rand(30, 1, 8, 8), k=3)
    )
    smoothed = SmoothedClassifier(model, sigma)
    n0, n, batch_size = 10, 60, 200  # n0 + n = 70 < batch_size: about 3 images per forward pass

    one = [smoothed.certify(x, n0, n, 0.01, batch_size, _generator(i)) for i, x in enumerate(xs)]
    passes_one = model.passes
    model.passes = 0
    many = smoothed.certify_many(list(xs), n0, n, 0.01, batch_size, [_generator(i) for i in range(len(xs))])
    passes_many = model.passes

    assert passes_one == 2 * len(xs)
    assert passes_many < passes_one / 2, (passes_many, passes_one)
    for a, b in zip(one, many, strict=True):
        assert torch.equal(a.counts_selection, b.counts_selection) and torch.equal(a.counts, b.counts)
        assert (a.prediction, a.radius, a.p_a_lower, a.sigma, a.count_a) == (
            b.prediction,
            b.radius,
            b.p_a_lower,
            b.sigma,
            b.count_a,
        )
    # not a trivial case: some certify, and the input-dependent sigma differs between images
    assert any(r.prediction != ABSTAIN for r in one)
    if sigma_kind == "input_dependent":
        assert len({r.sigma for r in one}) > 1

    for name, results in (("one", one), ("many", many)):
        with CertificationWriter(tmp_path / f"{name}.tsv", resume=False) as writer:
            for line in _rows(results, labels):
                writer.append_row(CertificationRow.from_line(line))
    assert (tmp_path / "one.tsv").read_text() == (tmp_path / "many.tsv").read_text()


def test_shared_generator_and_large_n_match_sequential() -> None:
    """certify_batch (one shared generator) equals certify in turn, also when n spans several batches."""
    torch.manual_seed(1)
    model = SmallCNN(3, 1, width=4, hidden=16).eval()
    smoothed = SmoothedClassifier(model, 0.2)
    xs = torch.rand(4, 1, 8, 8)
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    sequential = [smoothed.certify(x, 30, 250, 0.01, 100, gen_a) for x in xs]
    packed = smoothed.certify_batch(xs, 30, 250, 0.01, 100, gen_b)
    for a, b in zip(sequential, packed, strict=True):
        assert torch.equal(a.counts, b.counts) and torch.equal(a.counts_selection, b.counts_selection)
        assert a.radius == b.radius
