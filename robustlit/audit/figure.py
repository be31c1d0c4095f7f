"""Plot robustness curves (accuracy against eps or certified radius) as a matplotlib figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure


def robustness_curve_figure(
    curves: Sequence[Mapping[str, object]] | Mapping[str, Mapping[str, object]],
    title: str | None = None,
    headline: Mapping[str, object] | None = None,
) -> Figure:
    """One line per curve (dicts from :func:`robustness_curve` / :func:`certified_accuracy_curve`).

    ``curves`` is a list (labelled by each curve's ``name``) or a mapping label -> curve; certified
    curves (``kind == "certified"``) are drawn as step functions. ``headline`` (``eps``, ``accuracy``,
    ``label``), e.g. standard AutoAttack's number at its radius, is marked with a star: the curve's
    attacks are cheaper, so the headline point may lie below them. Built on
    ``matplotlib.figure.Figure`` directly (no pyplot state, any backend); save it with ``fig.savefig``.
    """
    items = (
        list(curves.items())
        if isinstance(curves, Mapping)
        else [(str(c.get("name", i)), c) for i, c in enumerate(curves)]
    )
    if not items:
        raise ValueError("no curve to draw")
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    norms = set()
    for label, curve in items:
        eps, acc = list(curve["eps"]), list(curve["robust_accuracy"])  # type: ignore[call-overload]
        norms.add(str(curve.get("norm", "")))
        ax.plot(
            eps,
            acc,
            marker="o",
            markersize=3,
            drawstyle="steps-post" if curve.get("kind") == "certified" else "default",
            label=label,
        )
    if headline is not None:
        ax.plot(
            [float(headline["eps"])],  # type: ignore[arg-type]
            [float(headline["accuracy"])],  # type: ignore[arg-type]
            marker="*",
            markersize=12,
            color="crimson",
            linestyle="none",
            label=str(headline.get("label", "headline")),
        )
    norm = norms.pop() if len(norms) == 1 else "mixed norms"
    ax.set_xlabel(f"radius eps ({norm})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig
