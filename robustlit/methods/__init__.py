"""One LightningModule per method, all on :class:`RobustClassifier`.

The mixed classifier's module lives in :mod:`robustlit.mixed` with the rest of its family; it is
re-exported here on first access (PEP 562), because ``robustlit.mixed.module`` itself imports
``robustlit.methods.base`` and an eager import would be circular.
"""

from typing import Any

from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.awp import MARTAWP, PGDATAWP, TRADESAWP, AdversarialWeightPerturbation
from robustlit.methods.base import NonFiniteLossError, RobustClassifier
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.external import PretrainedClassifier
from robustlit.methods.fast_at import FastAdversarialTraining
from robustlit.methods.gaussian_smoothing import GaussianSmoothing
from robustlit.methods.instance_reweighted import GAIRAT, MAIL, InstanceReweightedAT
from robustlit.methods.label_smoothing import ARAdaLS, LabelSmoothing
from robustlit.methods.mart import MART
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES


def __getattr__(name: str) -> Any:
    if name == "MixedClassifierModule":
        from robustlit.mixed.module import MixedClassifierModule

        return MixedClassifierModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GAIRAT",
    "MAIL",
    "MART",
    "MARTAWP",
    "PGDATAWP",
    "TRADESAWP",
    "AdversarialWeightPerturbation",
    "PGDAT",
    "PretrainedClassifier",
    "TRADES",
    "ARAdaLS",
    "AdversarialTraining",
    "DROAdversarialTraining",
    "FastAdversarialTraining",
    "GaussianSmoothing",
    "InstanceReweightedAT",
    "LabelSmoothing",
    "MixedClassifierModule",
    "NonFiniteLossError",
    "RobustClassifier",
    "Standard",
]
