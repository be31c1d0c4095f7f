"""Multi-seed comparisons: paired tests with Holm's correction and resumable run stores (docs/evaluation.md).

Pure numpy/scipy/statsmodels: the comparison scripts in ``examples/`` train and evaluate, these modules
summarise and keep what finished.
"""

from robustlit.experiments.paired import mean_std, paired_tests
from robustlit.experiments.store import RunStore

__all__ = ["RunStore", "mean_std", "paired_tests"]
