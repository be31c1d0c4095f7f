"""``python -m robustlit.results robustbench|leaderboard ...``; exit status 0 on success."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustlit.results.leaderboard import leaderboard_markdown
from robustlit.results.robustbench_format import write_robustbench_model_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustlit.results", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser(
        "robustbench", help="write a RobustBench model-info JSON from a run's AutoAttack result"
    )
    bench.add_argument("run_dir", help="run folder holding adversarial_evaluation_test.json (and config.yaml)")
    bench.add_argument("--out", default=None, help="output file (default RUN_DIR/robustbench_model_info.json)")
    for field in ("name", "link", "authors", "venue", "reported", "footnote", "dataset", "architecture", "attack"):
        bench.add_argument(f"--{field}", default=None)
    bench.add_argument("--additional-data", action="store_true", help="trained with data beyond the training set")
    bench.add_argument("--number-forward-passes", type=int, default=1)
    board = commands.add_parser("leaderboard", help="markdown table of several runs' test summaries")
    board.add_argument("run_dirs", nargs="+")
    board.add_argument("--out", default=None, help="write the table to this file as well as printing it")
    args = parser.parse_args(argv)
    if args.command == "robustbench":
        fields = {k: getattr(args, k) for k in ("name", "reported", "footnote", "dataset", "architecture", "attack")}
        fields.update({k: getattr(args, k) or "" for k in ("link", "authors", "venue")})
        path = write_robustbench_model_info(
            args.run_dir,
            args.out,
            additional_data=args.additional_data,
            number_forward_passes=args.number_forward_passes,
            **fields,
        )
        print(f"wrote {path}")
        return 0
    table = leaderboard_markdown(args.run_dirs)
    print(table, end="")
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
