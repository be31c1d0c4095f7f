"""The figures say what they show: the per-class figure labels every class with its number of examples, draws
the clean bar and marks an attack the audit flagged; the robustness curve marks the AutoAttack headline point."""

from __future__ import annotations

from robustlit.audit import robustness_curve_figure
from robustlit.callbacks.adversarial_evaluation import headline_point, per_class_figure_of


def _result(name: str, robust: float, per_class: list[float], **extra: object) -> dict:
    spec = {"name": name, "norm": "Linf", "eps": 0.2, "steps": 50, "restarts": 1}
    return {"spec": spec, "robust_acc": robust, "per_class_robust_acc": per_class, **extra}


def _summary() -> dict:
    return {
        "num_examples": 30,
        "clean_acc": 0.9,
        "per_class_clean_acc": [1.0, 0.9, 0.8],
        "per_class_count": [12, 10, 8],
        "attacks": {
            "autoattack_linf_0.2": _result("autoattack", 0.5, [0.6, 0.5, 0.4]),
            "pgd50_linf_0.2": _result("pgd", 0.7, [0.8, 0.7, 0.6], unreliable=True),
            "ensemble": _result("ensemble", 0.5, [0.6, 0.5, 0.4]),
        },
    }


def test_per_class_figure_labels_classes_counts_clean_and_unreliable() -> None:
    figure, data = per_class_figure_of(_summary(), "test, epoch 3")
    axes = figure.axes[0]
    labels = [tick.get_text() for tick in axes.get_xticklabels()]
    assert labels == ["0\nn=12", "1\nn=10", "2\nn=8"]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend[0] == "clean" and "pgd50_linf_0.2 (UNRELIABLE)" in legend and "autoattack_linf_0.2" in legend
    assert data["count"] == [12, 10, 8] and data["unreliable"] == ["pgd50_linf_0.2"]
    heights = [bar.get_height() for bar in axes.containers[0]]
    assert heights == [1.0, 0.9, 0.8]  # the clean bar comes first


def test_robustness_curve_marks_the_autoattack_headline() -> None:
    curve = {
        "name": "native_pgd20_margin_linf",
        "norm": "Linf",
        "eps": [0.0, 0.1, 0.2],
        "robust_accuracy": [0.9, 0.7, 0.55],
    }
    point = headline_point(_summary())
    assert point is not None and point["eps"] == 0.2 and point["accuracy"] == 0.5
    figure = robustness_curve_figure({"native_pgd20": curve}, "curve", headline=point)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    star = lines["AutoAttack 50.0% (headline)"]
    assert star.get_marker() == "*" and list(star.get_xdata()) == [0.2] and list(star.get_ydata()) == [0.5]
