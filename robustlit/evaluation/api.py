"""``robustlit.evaluate``: one call from a model and a dataset to honest robust accuracies.

Modelled on RobustBench's ``benchmark(model, n_examples, dataset, threat_model, eps, ...)`` (Croce et al.,
2021): clean accuracy and standard AutoAttack on the first ``n_examples`` test examples, the model in eval
mode, inputs in [0, 1]. It runs robustlit's :class:`~robustlit.callbacks.AdversarialEvaluation` (the
machinery of every ``robustlit test``: each example counted once, attacks that keep every success, the
attack-failure audit), so the numbers are those a config with the same attacks reports (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlit.attacks.eps import Eps, check_eps
from robustlit.attacks.spec import AttackSpec
from robustlit.evaluation.result import EvaluationResult
from robustlit.evaluation.sources import EvaluationSplit, LoadedModel, evaluation_split, example_shape, load_model
from robustlit.results.versions import library_versions
from robustlit.utils.errors import FieldError, did_you_mean

#: ``attacks="standard"``: the standard AutoAttack suite (pyautoattack), RobustBench's protocol
STANDARD = "standard"


AttackList = str | Sequence[str | Mapping[str, Any] | AttackSpec]


def attack_specs(attacks: AttackList, norm: str, eps: Eps) -> list[AttackSpec]:
    """``standard`` -> standard AutoAttack at (norm, eps); a name, ``"a,b"``, or a list of names, dicts
    (``{"name": "native_pgd", "steps": 50}``; norm and eps default to the evaluation's) or :class:`AttackSpec`."""
    if isinstance(attacks, str):
        attacks = [STANDARD] if attacks.strip() == STANDARD else [a.strip() for a in attacks.split(",") if a.strip()]
    specs = []
    for attack in attacks:
        if isinstance(attack, AttackSpec):
            specs.append(attack)
            continue
        fields = {"name": attack} if isinstance(attack, str) else dict(attack)
        if fields.get("name") == STANDARD:
            fields["name"] = "autoattack"
        fields.setdefault("norm", norm)
        fields.setdefault("eps", eps)
        try:
            specs.append(AttackSpec(**fields))
        except TypeError as error:
            names = [f for f in AttackSpec.__dataclass_fields__]
            bad = str(error).rpartition("'")[0].rpartition("'")[2]
            raise FieldError("attacks", f"{error}{did_you_mean(bad, names)}") from None
        except ValueError as error:
            raise FieldError("attacks", str(error)) from None
    if not specs:
        raise FieldError("attacks", f"no attack given; use {STANDARD!r} (AutoAttack) or attack names")
    return specs


@contextmanager
def _eval_mode(model: nn.Module):  # noqa: ANN202
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.train(training)


def evaluate(
    model: nn.Module | str | Path,
    data: Any = "digits",
    *,
    threat_model: str = "Linf",
    eps: Eps | str | float = "8/255",
    attacks: AttackList = STANDARD,
    n_examples: int | None = 10_000,
    normalization: Any = None,
    architecture: str | None = None,
    architecture_args: Mapping[str, Any] | None = None,
    split: str = "test",
    data_args: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    audit_examples: int = 100,
    cache_dir: str | Path | None = None,
    print_table: bool = False,
) -> EvaluationResult:
    """Clean accuracy and robust accuracy under ``attacks`` on the first ``n_examples`` of the test split.

    Args:
        model: an ``nn.Module`` mapping [0, 1] inputs to logits (normalising inside, as RobustBench's), or a
            file: a robustlit checkpoint (``.ckpt``) or export, a TorchScript file, or a state_dict
            (``.safetensors``/``.pt``, with ``architecture``); files that are not robustlit's need
            ``normalization`` (``inside``, ``data`` or ``{"mean": [...], "std": [...]}``).
        data: ``digits``, ``mnist``, ``cifar10``, ``cifar100``, ``tsipras``, a DataModule class path or instance
            (``data_args``: its init arguments), an ``(x, y)`` tensor pair or a ``Dataset`` (``num_classes``).
        threat_model: ``Linf`` or ``L2``.
        eps: the radius in pixel units, exactly as written: ``"8/255"`` stays ``8/255`` in names and files.
            Linf at most 1; L2 at most sqrt(d) for d input values in [0, 1].
        attacks: ``"standard"`` (standard AutoAttack, the default, as RobustBench), or attack names
            (``"apgd,native_pgd"``), or a list of names, dicts or :class:`~robustlit.attacks.AttackSpec`.
        n_examples: the first ``n_examples`` examples (``None``: all; RobustBench: 10,000).
        audit_examples: examples for the attack-failure audit of step-based attacks (0: off; docs/audit.md).
        device: ``cuda``/``cpu``/...; default the model's parameters' device, else CUDA when available.
        cache_dir: resume an interrupted evaluation batch by batch (docs/evaluation.md).
        print_table: print the table when done.
    """
    norm = str(threat_model)
    if norm not in ("Linf", "L2"):
        raise FieldError("threat_model", f"'Linf' or 'L2'; got {threat_model!r}{did_you_mean(norm, ['Linf', 'L2'])}")
    try:
        radius = Eps(eps)
        check_eps(radius, norm)
    except (TypeError, ValueError) as error:
        raise FieldError("eps", str(error).removeprefix("eps: ")) from None
    specs = attack_specs(attacks, norm, radius)
    split_data = evaluation_split(data, split=split, data_args=data_args, num_classes=num_classes, bounds=bounds)
    for spec in specs:
        try:
            check_eps(spec.eps, spec.norm, split_data.bounds, example_shape(split_data))
        except ValueError as error:
            raise FieldError("eps", f"{error} for {split_data.label}") from None
    loaded = load_model(
        model, split_data, normalization=normalization, architecture=architecture, architecture_args=architecture_args
    )
    target = torch.device(device) if device is not None else _default_device(loaded.classifier)
    classifier = loaded.classifier.to(target)

    from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation

    evaluation = AdversarialEvaluation(
        attacks=specs,
        num_examples=n_examples,
        batch_size=batch_size,
        stages=["test"],
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        print_table=False,
        audit_examples=audit_examples,
    )
    with _eval_mode(classifier):
        summary = evaluation.evaluate(classifier, split_data.dataset, split_data.num_classes, split_data.bounds, target)
    result = _result(summary, loaded, split_data, norm, radius)
    if print_table:
        result.print()
    return result


def _default_device(model: nn.Module) -> torch.device:
    parameter = next(iter(model.parameters()), None)
    if parameter is not None and parameter.device.type != "cpu":
        return parameter.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _result(
    summary: dict[str, Any], loaded: LoadedModel, split: EvaluationSplit, norm: str, eps: Eps
) -> EvaluationResult:
    model, architecture = loaded.label, loaded.architecture
    labels = {"model": model, "method": loaded.method, "architecture": architecture, "dataset": split.label}
    summary["labels"] = labels
    summary["threat_model"] = {"norm": norm, "eps": float(eps), "eps_text": str(eps)}
    if loaded.source is not None:
        summary["model_source"] = loaded.source
    if split.class_path is not None:
        summary["data"] = {"class_path": split.class_path, "init_args": split.init_args or {}}
    summary["versions"] = library_versions()
    attacks = summary["attacks"]
    return EvaluationResult(
        model=model,
        architecture=architecture,
        dataset=split.label,
        threat_model=norm,
        eps=eps,
        n_examples=int(summary["num_examples"]),
        dataset_size=int(summary.get("dataset_size") or summary["num_examples"]),
        clean_acc=float(summary["clean_acc"]),
        robust_acc={name: float(res["robust_acc"]) for name, res in attacks.items() if name != "ensemble"},
        worst_case=float(attacks["ensemble"]["robust_acc"]),
        unreliable=tuple(name for name, res in attacks.items() if res.get("unreliable")),
        summary=summary,
    )
