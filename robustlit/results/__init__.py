"""Results in the field's formats: RobustBench model-info files and markdown leaderboards (docs/interop.md).

python -m robustlit.results robustbench RUN_DIR --model-id ID [--name TITLE --link ... --authors ... --venue ...]
python -m robustlit.results leaderboard RUN_DIR [RUN_DIR ...] [--out leaderboard.md]
"""

from robustlit.results.leaderboard import leaderboard_markdown, leaderboard_rows, run_labels
from robustlit.results.robustbench_format import (
    ROBUSTBENCH_KEYS,
    TooFewExamplesWarning,
    format_eps,
    model_info,
    robustbench_model_info,
    write_model_info,
    write_robustbench_model_info,
)
from robustlit.results.versions import library_versions

__all__ = [
    "ROBUSTBENCH_KEYS",
    "TooFewExamplesWarning",
    "format_eps",
    "leaderboard_markdown",
    "leaderboard_rows",
    "library_versions",
    "model_info",
    "robustbench_model_info",
    "run_labels",
    "write_model_info",
    "write_robustbench_model_info",
]
