"""Sigma functions: constant, and the k-NN sigma of Suekenik et al. (docs/smoothing.md)."""

import pytest
import torch

from robustlit.certify import ConstantSigma, KNNSigma, SigmaFunction


def test_constant_sigma() -> None:
    fn = ConstantSigma(0.25)
    assert isinstance(fn, SigmaFunction) and fn.semi_elasticity == 0.0
    out = fn(torch.rand(7, 3, 4, 4))
    assert out.shape == (7,)
    assert torch.all(out == 0.25)
    with pytest.raises(ValueError):
        ConstantSigma(0.0)


def _brute_force_knn(x: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    d = ((x.flatten(1)[:, None, :] - ref.flatten(1)[None, :, :]) ** 2).sum(-1).sqrt()
    return d.sort(dim=1).values[:, :k].mean(dim=1)


def test_knn_sigma_matches_brute_force_with_small_chunks() -> None:
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(103, 2, 3, 3, generator=gen, dtype=torch.float64)
    x = torch.rand(29, 2, 3, 3, generator=gen, dtype=torch.float64)
    fn = KNNSigma(0.25, rate=0.3, reference=ref, k=7, normaliser=1.0, query_chunk=5, reference_chunk=11)
    expected = 0.25 * torch.exp(0.3 * (_brute_force_knn(x, ref, 7) - 1.0))
    torch.testing.assert_close(fn(x), expected, rtol=1e-12, atol=0)
    assert fn.semi_elasticity == 0.3
    assert "reference" in dict(fn.named_buffers())


def test_knn_sigma_is_rate_semi_elastic_on_random_pairs() -> None:
    gen = torch.Generator().manual_seed(1)
    rate = 0.5
    ref = torch.rand(200, 16, generator=gen, dtype=torch.float64)
    fn = KNNSigma(0.5, rate=rate, reference=ref, k=20, normaliser=1.5)
    x = torch.rand(300, 16, generator=gen, dtype=torch.float64)
    scale = torch.logspace(-4, 0, 300, dtype=torch.float64)[:, None]  # near and far pairs
    x2 = x + scale * torch.randn(300, 16, generator=gen, dtype=torch.float64)
    lhs = (fn(x).log() - fn(x2).log()).abs()
    rhs = rate * (x - x2).norm(dim=1)
    assert torch.all(lhs <= rhs * (1 + 1e-9) + 1e-12)
    assert (lhs / rhs).max() > 0.3  # the bound is not vacuous: some pairs use a good part of it


def test_knn_sigma_in_float32_and_bad_arguments() -> None:
    ref = torch.rand(30, 1, 4, 4)
    fn = KNNSigma(0.12, rate=0.01, reference=ref, k=5, normaliser=5.0)
    out = fn(torch.rand(4, 1, 4, 4))
    assert out.shape == (4,) and out.dtype == torch.float32 and torch.all(out > 0)
    with pytest.raises(ValueError):
        KNNSigma(0.12, rate=0.01, reference=ref, k=31)
    with pytest.raises(ValueError):
        KNNSigma(0.12, rate=-1.0, reference=ref)
    with pytest.raises(ValueError):
        fn(torch.rand(2, 8))
