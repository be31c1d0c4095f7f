"""One LightningModule per method, all on :class:`RobustClassifier`.

The mixed classifier's modules live with the rest of their family in :mod:`robustlit.mixed`
(``robustlit.mixed.MixedClassifierModule``, ``robustlit.mixed.MixedNUTSModule``): that package builds on
this one, never the reverse (tests/test_import_rules.py).
"""

from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.ar_adals import ARAdaLS
from robustlit.methods.awp import MARTAWP, PGDATAWP, TRADESAWP, AdversarialWeightPerturbation
from robustlit.methods.base import NonFiniteLossError, RobustClassifier
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.external import PretrainedClassifier
from robustlit.methods.fast_at import FastAdversarialTraining
from robustlit.methods.gaussian_smoothing import GaussianSmoothing
from robustlit.methods.instance_reweighted import GAIRAT, MAIL, InstanceReweightedAT
from robustlit.methods.label_smoothing import LabelSmoothing
from robustlit.methods.mart import MART
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES

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
    "NonFiniteLossError",
    "RobustClassifier",
    "Standard",
]
