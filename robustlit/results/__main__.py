"""``python -m robustlit.results robustbench|leaderboard ...``; exit status 0 on success, 2 on bad input."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from robustlit.results.leaderboard import leaderboard_markdown
from robustlit.results.robustbench_format import TooFewExamplesWarning, write_robustbench_model_info


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m robustlit.results", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser(
        "robustbench",
        help="write a RobustBench model-info JSON (<model ID>.json) from a run's AutoAttack result",
    )
    bench.add_argument("run_dir", help="run folder holding adversarial_evaluation_test.json (and config.yaml)")
    bench.add_argument(
        "--model-id",
        default=None,
        help="RobustBench model ID, the file's name: <FirstAuthor><Year><FirstWord>, e.g. Zhang2019Theoretically "
        "(default: the run's logger name)",
    )
    bench.add_argument("--out-dir", default=None, help="folder of <model ID>.json (default: RUN_DIR)")
    bench.add_argument("--out", default=None, help="the file itself (its stem is the model ID)")
    bench.add_argument("--name", default="", help="the paper's title (RobustBench's `name`)")
    bench.add_argument("--reported", default="", help="robust accuracy the paper reports, e.g. 56.43 (default: none)")
    for field in ("link", "authors", "venue"):
        bench.add_argument(f"--{field}", default="")
    for field in ("footnote", "dataset", "architecture", "attack"):
        bench.add_argument(f"--{field}", default=None)
    bench.add_argument("--additional-data", action="store_true", help="trained with data beyond the training set")
    bench.add_argument("--number-forward-passes", type=int, default=1)
    board = commands.add_parser("leaderboard", help="markdown tables of runs' test summaries, one per threat model")
    board.add_argument("run_dirs", nargs="+")
    board.add_argument("--out", default=None, help="write the tables to this file as well as printing them")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "robustbench":
            return _robustbench(args)
        table = leaderboard_markdown(args.run_dirs)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table, end="")
    if args.out:
        Path(args.out).write_text(table)
    return 0


def _robustbench(args: argparse.Namespace) -> int:
    out_dir, model_id = args.out_dir, args.model_id
    if args.out:
        out_dir, model_id = str(Path(args.out).parent), Path(args.out).stem
    fields = {k: getattr(args, k) for k in ("name", "reported", "link", "authors", "venue", "footnote", "attack")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TooFewExamplesWarning)
        path = write_robustbench_model_info(
            args.run_dir,
            out_dir,
            model_id=model_id,
            dataset=args.dataset,
            architecture=args.architecture,
            additional_data=args.additional_data,
            number_forward_passes=args.number_forward_passes,
            **fields,
        )
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if not args.name:
        print("note: RobustBench's `name` is the paper's title: pass --name", file=sys.stderr)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
