"""``robustlit evaluate``: :func:`robustlit.evaluate` from the command line.

    robustlit evaluate --model runs/digits-trades/version_0/checkpoints/best.ckpt --data digits --eps 8/255
    robustlit evaluate --model model.ts --normalization inside --data cifar10 --eps 8/255 --n-examples 10000 \\
        --model-id Zhang2019Theoretically --name "Theoretically Principled Trade-off between Robustness and Accuracy"

prints the table, writes ``adversarial_evaluation_test.json`` (and the per-class figure) into the output folder
(``runs/evaluate/<model>/version_N``, printed first) and, with ``--model-id`` and an AutoAttack result, the
RobustBench model-info file ``<model ID>.json``. Exit status: 0 success, 2 bad input (one ``error: <field>:
<reason>`` line), 1 a failure while attacking.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from robustlit.attacks.eps import Eps, check_eps
from robustlit.utils.errors import FieldError

PROG = "robustlit evaluate"
DESCRIPTION = (
    "Evaluate a model on the first --n-examples test examples: clean accuracy, standard AutoAttack (or the\n"
    "attacks given), the per-example worst case and the attack-failure audit; eps written exactly (8/255).\n"
    "Exit status: 0 success, 2 bad input (one line), 1 a failed run. docs/evaluation.md"
)
EXAMPLES = """examples:
  robustlit evaluate --model runs/digits-trades/version_0/checkpoints/best.ckpt --data digits --eps 8/255
  robustlit evaluate --model model.ts --normalization inside --data cifar10 --eps 8/255 \\
      --model-id Zhang2019Theoretically --name "Theoretically Principled Trade-off between Robustness and Accuracy"
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one ``error: <field>: <reason>`` line (exit 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument (\S+?)(?:/\S+)?: (.*)", message)
        line = f"{match.group(1)}: {match.group(2)}" if match else message
        self.exit(2, f"error: {line}\n(see `{PROG} --help`)\n")


def _eps(text: str) -> Eps:
    try:
        return Eps(text)
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object such as '{{\"width\": 32}}'; got {text!r}")
    return value


def _attacks(text: str) -> Any:
    """``standard``, ``apgd,native_pgd`` or a YAML/JSON list (``[{name: native_pgd, steps: 50}, autoattack]``)."""
    if text.lstrip().startswith("["):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise argparse.ArgumentTypeError(f"not a YAML list: {error}") from None
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"an integer >= 1; got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model", required=True, help="robustlit .ckpt or export folder, TorchScript file, or state_dict"
    )
    model.add_argument(
        "--normalization",
        default=None,
        help="how a TorchScript/state_dict model expects its inputs: inside | data | "
        '\'{"mean": [...], "std": [...]}\' (required for those; robustlit files normalise inside)',
    )
    model.add_argument("--architecture", default=None, help="class path building a state_dict's model")
    model.add_argument("--architecture-args", type=_json_object, default=None, help="its init args as JSON")
    data = p.add_argument_group("data")
    data.add_argument("--data", default="digits", help="digits | mnist | cifar10 | cifar100 | tsipras | a class path")
    data.add_argument(
        "--data-args", type=_json_object, default=None, help='DataModule init args, e.g. \'{"root": "data"}\''
    )
    data.add_argument("--split", choices=["test", "val"], default="test")
    threat = p.add_argument_group("threat model and attacks")
    threat.add_argument("--threat-model", choices=["Linf", "L2"], default="Linf")
    threat.add_argument("--eps", type=_eps, default=Eps("8/255"), help="radius in pixel units, e.g. 8/255 or 0.5")
    threat.add_argument(
        "--attacks",
        type=_attacks,
        default="standard",
        help="standard (AutoAttack) | names: apgd,native_pgd | a YAML list: "
        "'[{name: native_pgd, steps: 50}, autoattack]'",
    )
    threat.add_argument(
        "--n-examples", type=_positive, default=10_000, help="the first N test examples (default 10000)"
    )
    threat.add_argument("--audit-examples", type=int, default=100, help="attack-failure audit examples (0: off)")
    run = p.add_argument_group("run")
    run.add_argument("--batch-size", type=_positive, default=256)
    run.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--cache-dir", default=None, help="resume an interrupted evaluation batch by batch")
    run.add_argument("--out", default=None, help="output folder (default runs/evaluate/<model>/version_N)")
    bench = p.add_argument_group("RobustBench model-info file (written with --model-id when AutoAttack ran)")
    bench.add_argument("--model-id", default=None, help="<FirstAuthor><Year><FirstWord>, the file's name")
    bench.add_argument("--name", default="", help="the paper's title")
    bench.add_argument("--reported", default="", help="the robust accuracy the paper reports (default: none)")
    for field in ("link", "authors", "venue"):
        bench.add_argument(f"--{field}", default="")
    bench.add_argument("--footnote", default=None)
    bench.add_argument("--additional-data", action="store_true")
    return p


def _next_version(root: Path) -> Path:
    taken = [int(m.group(1)) for d in root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", d.name))]
    return root / f"version_{max(taken, default=-1) + 1}"


def run(args: argparse.Namespace) -> int:
    from robustlit.evaluation.api import evaluate
    from robustlit.evaluation.sources import model_label

    try:
        check_eps(args.eps, args.threat_model)
    except ValueError as error:
        raise FieldError("--eps", str(error).removeprefix("eps: ")) from None
    out = Path(args.out) if args.out else _next_version(Path("runs") / "evaluate" / model_label(Path(args.model)))
    print(f"robustlit evaluate: results in {out}", flush=True)
    result = evaluate(
        args.model,
        args.data,
        threat_model=args.threat_model,
        eps=args.eps,
        attacks=args.attacks,
        n_examples=args.n_examples,
        normalization=args.normalization,
        architecture=args.architecture,
        architecture_args=args.architecture_args,
        split=args.split,
        data_args=args.data_args,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        audit_examples=args.audit_examples,
        cache_dir=args.cache_dir,
    )
    result.print()
    written = [result.save(out), *_figures(result, out)]
    if args.model_id is not None:
        if result.autoattack_acc is None:
            raise FieldError("--model-id", "a RobustBench file needs standard AutoAttack: keep --attacks standard")
        fields = {k: getattr(args, k) for k in ("name", "reported", "link", "authors", "venue", "footnote")}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            written.append(result.write_robustbench(out, args.model_id, additional_data=args.additional_data, **fields))
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0


def _figures(result: Any, out: Path) -> list[Path]:
    from robustlit.callbacks.adversarial_evaluation import per_class_figure_of

    figure, data = per_class_figure_of(result.summary, f"{result.model} on {result.dataset}")
    path = out / "per_class_robust_acc_test.png"
    figure.savefig(path, dpi=120)
    (out / "per_class_robust_acc_test.json").write_text(json.dumps(data, indent=2))
    return [path]


def main(argv: list[str] | None = None) -> int:
    """Parse and run; a :class:`FieldError` (bad input found while building the model or data) is one line, exit 2."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad argument (2), already printed
        return int(exit_.code or 0)
    try:
        return run(args)
    except FieldError as error:
        field = error.field if error.field.startswith("--") else f"--{error.field.replace('_', '-')}"
        print(f"error: {field}: {error.reason}", file=sys.stderr)
        return 2
