"""MixtureEvaluation: base models and mixture in one summary, alpha sweep figure, certificates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from mixed_toys import K, tiny_base, tiny_dataset, tiny_loader, tiny_module, tiny_trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from robustlit.attacks.spec import AttackSpec
from robustlit.certify.bounds import clopper_pearson_lower
from robustlit.certify.radius import cohen_radius
from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.mixed.certificates import certify_mixture_lipschitz, certify_smoothed_robust_branch
from robustlit.mixed.evaluation import MixtureEvaluation, find_mixture
from robustlit.mixed.sweep_figure import sweep_figure
from robustlit.utils import distributed

PGD = AttackSpec("pgd", "Linf", 0.2, 3, 0.1)


def _callback(**kwargs) -> MixtureEvaluation:
    options = dict(attacks=[PGD], bce_weights=[0.5], sweep_alphas=[0.0, 0.5, 1.0], num_examples=12, batch_size=8)
    options.update(kwargs)
    return MixtureEvaluation(**options)


def test_summary_puts_base_models_and_mixture_side_by_side():
    module = tiny_module().eval()
    summary = _callback(lipschitz=2.0).evaluate(module.mixture, tiny_dataset(16), K, (0.0, 1.0), torch.device("cpu"))
    assert summary["num_examples"] == 12
    x, y = tiny_dataset(16)[:12]
    models = summary["models"]
    for name, model in (
        ("standard", tiny_base(0, 4)),
        ("robust", tiny_base(1, 6)),
        ("mixture", module.mixture),
    ):
        with torch.no_grad():
            expected = (model(x).argmax(dim=1) == y).float().mean().item()
        assert models[name]["clean_acc"] == pytest.approx(expected)
        robust = models[name]["robust_acc"]
        assert all(v <= models[name]["clean_acc"] for v in robust.values())
        assert models[name]["worst_robust_acc"] <= min(robust.values())
    # adaptive APGD-CE and APGD-T through alpha, at PGD's eps and budget
    assert set(models["mixture"]["robust_acc"]) == {
        PGD.metric_name,
        "adaptive_apgd3_linf_0.2",
        "adaptive_apgd_t3_linf_0.2",
    }
    assert 0 <= models["mixture"]["alpha_clean"] <= 1
    # constant alpha 0 predicts as g, 1 as h (docs/mixed_classifier.md), through the sweep of the same mixture
    points = summary["sweep"]["points"]
    assert [p["alpha"] for p in points] == [0.0, 0.5, 1.0]
    assert points[0]["clean_acc"] == pytest.approx(models["standard"]["clean_acc"])
    assert points[2]["clean_acc"] == pytest.approx(models["robust"]["clean_acc"])
    assert module.mixture.alpha is None  # the sweep restored the mixing network
    cert = summary["certified"]["lipschitz"]
    assert cert["mixture_alpha_lower_bound"] == 0.0 and all(v == 0 for v in cert["acc_at"].values())


def test_fit_logs_metrics_figure_and_json(tmp_path):
    module = tiny_module()
    logger = TensorBoardLogger(tmp_path, name="mixed")
    callback = _callback(num_examples=8, print_table=True)
    trainer = tiny_trainer(callbacks=[callback], logger=logger, limit_train_batches=1)
    trainer.fit(module, tiny_loader(16), tiny_loader(16))
    metrics = trainer.callback_metrics
    for key in (
        "val/mixture_eval/standard/clean_acc",
        f"val/mixture_eval/robust/robust_acc/{PGD.metric_name}",
        "val/mixture_eval/mixture/robust_acc/adaptive_apgd3_linf_0.2",
        "val/mixture_eval/mixture/robust_acc/adaptive_apgd_t3_linf_0.2",
        "val/mixture_eval/mixture/robust_acc/worst",
        "val/mixture_sweep/alpha_0.5/robust_acc",
        "val/alpha_clean",
    ):
        assert key in metrics, key
    log_dir = Path(trainer.log_dir)
    assert (log_dir / "mixture_sweep_val.png").stat().st_size > 1000
    summary = json.loads((log_dir / "mixture_evaluation_val.json").read_text())
    assert summary["models"]["mixture"]["clean_acc"] == pytest.approx(
        metrics["val/mixture_eval/mixture/clean_acc"].item()
    )
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    assert "val/mixture_sweep" in events.Tags()["images"]


def test_sweep_figure_draws_the_curve_and_the_three_models():
    module = tiny_module().eval()
    summary = _callback(num_examples=8).evaluate(module.mixture, tiny_dataset(8), K, (0.0, 1.0), torch.device("cpu"))
    figure = sweep_figure(summary)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(ax.lines) == 4  # constant-alpha curve + g + h + mixture
    assert [t.get_text() for t in ax.texts] == ["0", "0.5", "1"]


def test_smoothed_mixture_certificate_matches_cohen_at_alpha_one():
    robust = tiny_base(1, 6)
    x, _ = tiny_dataset(3)[:]
    pred, radius = certify_smoothed_robust_branch(
        robust, x, alpha=1.0, sigma=0.25, n0=16, n=200, generator=torch.Generator().manual_seed(0)
    )
    smoothed = SmoothedClassifier(robust, 0.25)
    gen = torch.Generator().manual_seed(0)
    for i in range(3):  # replay the same draws: selection, then estimation
        c = int(smoothed.sample_counts(x[i], 16, 1000, gen).argmax())
        p1 = clopper_pearson_lower(int(smoothed.sample_counts(x[i], 200, 1000, gen)[c]), 200, 0.001)
        assert pred[i] == c
        assert radius[i].item() == pytest.approx(max(0.0, cohen_radius(p1, 0.25)) if p1 > 0.5 else 0.0, abs=1e-9)
    assert radius.max() > 0
    _, below_half = certify_smoothed_robust_branch(robust, x, 0.4, 0.25, 16, 200)
    assert (below_half == 0).all()  # alpha < 1/2: no certificate whatever h does


def test_lipschitz_certificate_is_zero_below_the_margin_condition():
    robust = tiny_base(1, 6)
    x, _ = tiny_dataset(16)[:]
    probs = robust(x).softmax(dim=1)
    top2 = probs.topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    alpha = 0.8
    pred, radius = certify_mixture_lipschitz(robust, x, alpha, lipschitz=1.0)
    assert torch.equal(pred, probs.argmax(dim=1))
    assert torch.all(radius[margin <= (1 - alpha) / alpha] == 0)
    torch.testing.assert_close(radius, (margin - 0.25).clamp(min=0) / 2.0)


def test_find_mixture_and_argument_checks():
    module = tiny_module()
    assert find_mixture(module) is module.mixture
    with pytest.raises(TypeError, match="AdversarialEvaluation"):
        find_mixture(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="sweep_alphas"):
        MixtureEvaluation(sweep_alphas=[1.5])
    with pytest.raises(ValueError, match="duplicate"):
        MixtureEvaluation(attacks=[PGD, PGD])


def test_two_ranks_report_the_single_process_numbers(monkeypatch):
    """Whole batches dealt to ranks, seeded by batch index: 2 (simulated) ranks == 1 process, exactly."""
    module = tiny_module().eval()
    callback = _callback(num_examples=12, batch_size=4, sweep_alphas=[0.5])
    args = (module.mixture, tiny_dataset(16), K, (0.0, 1.0), torch.device("cpu"))

    def local_rows(rank: int, world_size: int) -> list[dict]:
        torch.manual_seed(100 + 10 * world_size + rank)  # processes differ in their global RNG state
        with monkeypatch.context() as patch:
            patch.setattr(distributed, "world", lambda: (rank, world_size))
            patch.setattr(distributed, "gather_rows", lambda local, n: local)  # this rank's rows, ungathered
            patch.setattr(callback, "summarise", lambda rows, mixture: rows)
            return callback.evaluate(*args)

    def attacked_alpha(rows: list[dict]) -> torch.Tensor:
        """alpha at the PGD examples: a float per example that depends on the attack's random start."""
        index = torch.cat([r["index"] for r in rows])
        return torch.cat([r["alpha_attacked"] for r in rows])[index.argsort()]

    single = local_rows(0, 1)
    rank0, rank1 = local_rows(0, 2), local_rows(1, 2)
    assert [len(single), len(rank0), len(rank1)] == [3, 2, 1]  # batches {0, 1, 2}; {0, 2} and {1}
    assert torch.equal(attacked_alpha(rank1 + rank0), attacked_alpha(single))
    assert torch.equal(attacked_alpha(local_rows(0, 1)), attacked_alpha(single))  # a rerun agrees
    gathered = distributed.gather_rows(rank1 + rank0, 12)  # checks 0..11 once each, orders by index
    assert callback.summarise(gathered, module.mixture) == callback.evaluate(*args)


def test_mixture_alone_per_example_masks_and_the_keep_fraction_reached():
    from torch.utils.data import TensorDataset

    module = tiny_module().eval()
    x, _ = tiny_dataset(16)[:]
    with torch.no_grad():
        data, device = TensorDataset(x, module.mixture(x).argmax(1)), torch.device("cpu")  # the mixture always right
    weak = [AttackSpec("pgd", "Linf", 0.02, 3, 0.01)]  # some examples survive: the masks are not all zero
    full = _callback(attacks=weak, sweep_alphas=[], per_example=True).evaluate(module.mixture, data, K, (0, 1), device)
    alone = _callback(attacks=weak, sweep_alphas=[], base_models=False).evaluate(
        module.mixture, data, K, (0, 1), device
    )
    assert set(alone["models"]) == {"mixture"} and "per_example" not in alone
    for key in ("clean_acc", "robust_acc", "worst_robust_acc"):  # same seeds whatever else is evaluated
        assert alone["models"]["mixture"][key] == full["models"]["mixture"][key]
    assert 0 < full["models"]["mixture"]["worst_robust_acc"] < full["models"]["mixture"]["clean_acc"]
    per_example = full["per_example"]
    assert per_example["index"] == list(range(12))
    for name in ("standard", "robust", "mixture"):
        clean = torch.tensor(per_example[f"{name}/clean"], dtype=torch.float)
        assert clean.mean().item() == pytest.approx(full["models"][name]["clean_acc"])
    worst = {
        name: torch.stack(
            [torch.tensor(v) for k, v in per_example.items() if k.startswith(f"{name}/") and not k.endswith("/clean")]
        ).all(0)  # fmt: skip
        for name in ("robust", "mixture")
    }
    assert worst["mixture"].float().mean().item() == pytest.approx(full["models"]["mixture"]["worst_robust_acc"])
    if worst["robust"].any():
        kept = worst["mixture"][worst["robust"]].float().mean().item()
        assert full["models"]["mixture"]["kept_of_robust_base"] == pytest.approx(kept)
