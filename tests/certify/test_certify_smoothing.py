"""Monte-Carlo PREDICT / CERTIFY (Cohen et al. 2019, Section 3; docs/smoothing.md)."""

import math

import pytest
import torch
from scipy.stats import norm
from torch import Tensor, nn

from robustlit.certify import (
    ABSTAIN,
    KNNSigma,
    SmoothedClassifier,
    clopper_pearson_lower,
    cohen_radius,
    input_dependent_radius,
)


class LinearBinary(nn.Module):
    """f(x) = 1 if w^T x + b > 0 else 0, as two logits (0, w^T x + b)."""

    def __init__(self, w: Tensor, b: float) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.b = b

    def forward(self, x: Tensor) -> Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


class Recorder(nn.Module):
    """Records every input batch and its training flag; predicts class 0 of 3."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.drop = nn.Dropout(0.5)
        self.inputs: list[Tensor] = []
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.clone())
        self.modes.append(self.training or self.drop.training)
        logits = torch.zeros(x.shape[0], 3)
        logits[:, 0] = 1.0
        return logits


def _linear_problem(dim: int = 10, seed: int = 0) -> tuple[LinearBinary, Tensor, float]:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    x = torch.full((dim,), 0.5, dtype=torch.float64)
    return LinearBinary(w, 0.0), x, float(w.norm())


def _point_at_distance(model: LinearBinary, x: Tensor, distance: float, b_norm: float) -> None:
    """Set b so that x is at l2 distance `distance` on the class-1 side."""
    model.b = distance * b_norm - float(x @ model.w)


def test_linear_classifier_radius_is_tight_and_never_exceeds_the_true_distance() -> None:
    model, x, w_norm = _linear_problem()
    sigma, distance = 0.5, 0.5  # exact p_A = Phi(1) = 0.841
    _point_at_distance(model, x, distance, w_norm)
    smoothed = SmoothedClassifier(model, sigma)
    result = smoothed.certify(x, n0=100, n=100_000, alpha=0.001, batch_size=10_000, generator=_gen(0))
    assert result.prediction == 1 and result.radius_method == "cohen"
    exact = cohen_radius(norm.cdf(distance / sigma), sigma)
    assert exact == pytest.approx(distance)
    assert result.radius <= distance
    assert result.radius > distance - 0.03
    assert result.radius == pytest.approx(cohen_radius(result.p_a_lower, sigma))
    assert result.p_a_lower == pytest.approx(clopper_pearson_lower(result.count_a, 100_000, 0.001))
    assert int(result.counts_selection.sum()) == 100 and int(result.counts.sum()) == 100_000


def test_certify_failure_rate_is_at_most_alpha() -> None:
    model, x, w_norm = _linear_problem(dim=5, seed=1)
    sigma, distance, alpha, trials = 0.25, 0.2, 0.05, 200
    _point_at_distance(model, x, distance, w_norm)
    smoothed = SmoothedClassifier(model, sigma)
    gen = _gen(123)
    failures = abstains = 0
    for _ in range(trials):
        result = smoothed.certify(x, n0=10, n=100, alpha=alpha, batch_size=64, generator=gen)
        if result.prediction == ABSTAIN:
            abstains += 1
        elif result.prediction != 1 or result.radius > distance:
            failures += 1
    slack = 3 * math.sqrt(trials * alpha * (1 - alpha))
    print(f"certify failures {failures}/{trials} (alpha={alpha}), abstentions {abstains}")
    assert failures <= alpha * trials + slack
    assert abstains < trials  # the test is not vacuous


def test_predict_abstains_on_a_fifty_fifty_toy_and_rarely_errs() -> None:
    model, x, w_norm = _linear_problem(dim=4, seed=2)
    _point_at_distance(model, x, 0.0, w_norm)  # exactly on the boundary: p = 1/2 for both classes
    smoothed = SmoothedClassifier(model, 0.5)
    gen = _gen(7)
    preds = [smoothed.predict(x, n=1000, alpha=0.001, batch_size=500, generator=gen) for _ in range(30)]
    assert preds.count(ABSTAIN) == 30
    # Slightly on the class-1 side (p = 0.6): a wrong class (0) at most ~alpha of the time.
    _point_at_distance(model, x, 0.5 * norm.ppf(0.6), w_norm)
    preds = [smoothed.predict(x, n=200, alpha=0.05, batch_size=200, generator=gen) for _ in range(100)]
    assert preds.count(0) <= 5 + 3 * math.sqrt(100 * 0.05 * 0.95)
    assert preds.count(1) > 0
    # Far from the boundary: always class 1.
    _point_at_distance(model, x, 2.0, w_norm)
    assert smoothed.predict(x, n=100, alpha=0.001, batch_size=100, generator=gen) == 1


def test_sampling_batches_counts_and_noise_before_the_model() -> None:
    model = Recorder()
    model.train()
    model.drop.eval()  # mixed modes must come back as they were
    smoothed = SmoothedClassifier(model, 0.3)
    x = torch.full((1, 4, 4), 0.5)
    counts = smoothed.sample_counts(x, num_samples=1037, batch_size=100, generator=_gen(3))
    assert counts.dtype == torch.int64 and counts.device.type == "cpu"
    assert counts.tolist() == [1037, 0, 0]
    assert [b.shape[0] for b in model.inputs] == [100] * 10 + [37]
    assert not any(model.modes)
    assert model.training and not model.drop.training and model.lin.training
    noise = torch.cat(model.inputs) - x
    assert noise.shape == (1037, 1, 4, 4)
    assert float(noise.std()) == pytest.approx(0.3, rel=0.03)
    assert abs(float(noise.mean())) < 0.01
    inputs = torch.cat(model.inputs)
    assert float(inputs.min()) < 0.0 and float(inputs.max()) > 1.0  # not clipped to [0, 1]


def test_selection_and_estimation_use_fresh_samples_and_seeds_reproduce() -> None:
    model = Recorder()
    smoothed = SmoothedClassifier(model, 0.2)
    x = torch.rand(3, 2, 2, generator=_gen(0))
    first = smoothed.certify(x, n0=20, n=50, alpha=0.001, batch_size=20, generator=_gen(5))
    inputs = torch.cat(model.inputs)
    assert inputs.shape[0] == 70
    assert torch.unique(inputs.flatten(1), dim=0).shape[0] == 70  # no draw is reused
    again = smoothed.certify(x, n0=20, n=50, alpha=0.001, batch_size=20, generator=_gen(5))
    assert (first.prediction, first.radius) == (again.prediction, again.radius)
    assert first.prediction == 0 and first.radius == pytest.approx(0.2 * norm.ppf(0.001 ** (1 / 50)))


def test_input_dependent_sigma_is_certified_with_the_input_dependent_radius() -> None:
    gen = _gen(11)
    reference = torch.rand(50, 1, 4, 4, generator=gen)
    sigma_fn = KNNSigma(0.25, rate=0.05, reference=reference, k=5, normaliser=1.0)
    model = LinearBinary(torch.ones(16), -4.0)
    x = torch.full((1, 4, 4), 0.9)
    smoothed = SmoothedClassifier(model, sigma_fn)
    result = smoothed.certify(x, n0=50, n=2000, alpha=0.001, batch_size=1000, generator=gen)
    assert result.prediction == 1 and result.radius_method == "input_dependent"
    assert result.sigma == pytest.approx(float(sigma_fn(x.unsqueeze(0))[0]))
    expected = input_dependent_radius(result.p_a_lower, result.sigma, 0.05, dim=16)
    assert result.radius == expected
    assert 0 < result.radius < cohen_radius(result.p_a_lower, result.sigma)


def test_inputs_outside_pixel_range_raise_unless_bounds_are_off() -> None:
    model, x, _ = _linear_problem(dim=4)
    normalised = (x - 0.5) / 0.2 - 1.0
    with pytest.raises(ValueError, match=r"outside input_bounds.*normalisation inside the model"):
        SmoothedClassifier(model, 0.25).certify(normalised, 10, 10, 0.001, 10)
    with pytest.raises(ValueError, match="NaN"):
        SmoothedClassifier(model, 0.25).predict(torch.full((4,), float("nan")), 10, 0.001, 10)
    result = SmoothedClassifier(model, 0.25, input_bounds=None).certify(normalised, 10, 10, 0.001, 10)
    assert result.n == 10


def test_certify_batch_and_predict_batch() -> None:
    model, x, w_norm = _linear_problem(dim=4, seed=3)
    _point_at_distance(model, x, 1.0, w_norm)
    smoothed = SmoothedClassifier(model, 0.25)
    batch = torch.stack([x, x])
    results = smoothed.certify_batch(batch, 10, 200, 0.001, 100, generator=_gen(1))
    assert [r.prediction for r in results] == [1, 1]
    assert smoothed.predict_batch(batch, 100, 0.001, 100, generator=_gen(1)).tolist() == [1, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_runs_on_the_model_device_with_cpu_or_cuda_generators() -> None:
    model, x, w_norm = _linear_problem(dim=6, seed=4)
    _point_at_distance(model, x, 0.5, w_norm)
    model = model.cuda()
    smoothed = SmoothedClassifier(model, 0.5)
    for gen in (torch.Generator().manual_seed(0), torch.Generator(device="cuda").manual_seed(0)):
        counts = smoothed.sample_counts(x, 1000, 300, generator=gen)
        assert counts.device.type == "cpu" and int(counts.sum()) == 1000 and int(counts[1]) > 700
    result = smoothed.certify(x, 100, 10_000, 0.001, 5000)
    assert result.prediction == 1 and 0.4 < result.radius <= 0.5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
