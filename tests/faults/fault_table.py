"""Regenerate the fault-run table of ``docs/faults.md`` by running the fault tests.

    python tests/faults/fault_table.py            # runs tests/faults (about 3 minutes on 2 CPU cores)

Each fault test appends one row (what was done, what happened, how it is handled) to a JSON-lines file
named by ``ROBUSTLIT_FAULT_TABLE`` *before* its assertions, so a failing scenario shows up in the table
too, marked by the test's outcome. The rows replace the text between the two ``fault-table`` markers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAGE = REPO / "docs" / "faults.md"
START, END = "<!-- fault-table:start -->", "<!-- fault-table:end -->"


def _outcomes(junit: Path) -> dict[str, str]:
    """test function name -> passed / failed / skipped."""
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("name", "").split("[")[0]
        failed = case.find("failure") is not None or case.find("error") is not None
        state = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
        if outcomes.get(name) != "failed":
            outcomes[name] = state
    return outcomes


def render(rows: list[dict], outcomes: dict[str, str]) -> str:
    lines = ["| What was done | What happened | How it is handled | Test |", "|---|---|---|---|"]
    for row in rows:
        test = row["test"].split("::")[-1].split("[")[0].split(" ")[0]
        cells = [row["fault"], row["happened"], row["handled"], f"`{test}`: {outcomes.get(test, '?')}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows_file, junit = Path(tmp) / "rows.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "ROBUSTLIT_FAULT_TABLE": str(rows_file), "OMP_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE), f"--junitxml={junit}"]
        status = subprocess.run(command, cwd=REPO, env=env, check=False).returncode
        rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
        table = render(rows, _outcomes(junit) if junit.exists() else {})
    page = PAGE.read_text()
    head, rest = page.split(START, 1)
    PAGE.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")
    print(f"{len(rows)} rows written to {PAGE.relative_to(REPO)}; pytest exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
