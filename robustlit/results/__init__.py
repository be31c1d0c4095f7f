"""Results in the field's formats: RobustBench model-info files and markdown leaderboards (docs/interop.md).

python -m robustlit.results robustbench RUN_DIR [--name ... --link ... --authors ... --venue ...]
python -m robustlit.results leaderboard RUN_DIR [RUN_DIR ...] [--out leaderboard.md]
"""

from robustlit.results.leaderboard import leaderboard_markdown, leaderboard_rows
from robustlit.results.robustbench_format import (
    format_eps,
    robustbench_model_info,
    write_robustbench_model_info,
)
from robustlit.results.versions import library_versions

__all__ = [
    "format_eps",
    "leaderboard_markdown",
    "leaderboard_rows",
    "library_versions",
    "robustbench_model_info",
    "write_robustbench_model_info",
]
