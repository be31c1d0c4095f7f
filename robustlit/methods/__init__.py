"""One LightningModule per method, all on :class:`RobustClassifier`."""

from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.base import NonFiniteLossError, RobustClassifier
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES

__all__ = ["PGDAT", "TRADES", "AdversarialTraining", "NonFiniteLossError", "RobustClassifier", "Standard"]
