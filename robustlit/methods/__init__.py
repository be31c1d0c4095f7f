"""One LightningModule per method, all on :class:`RobustClassifier`."""

from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.base import NonFiniteLossError, RobustClassifier
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.external import PretrainedClassifier
from robustlit.methods.gaussian_smoothing import GaussianSmoothing
from robustlit.methods.instance_reweighted import GAIRAT, MAIL, InstanceReweightedAT
from robustlit.methods.label_smoothing import ARAdaLS, LabelSmoothing
from robustlit.methods.mixed import MixedClassifierModule
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES

__all__ = [
    "GAIRAT",
    "MAIL",
    "PGDAT",
    "PretrainedClassifier",
    "TRADES",
    "ARAdaLS",
    "AdversarialTraining",
    "DROAdversarialTraining",
    "GaussianSmoothing",
    "InstanceReweightedAT",
    "LabelSmoothing",
    "MixedClassifierModule",
    "NonFiniteLossError",
    "RobustClassifier",
    "Standard",
]
