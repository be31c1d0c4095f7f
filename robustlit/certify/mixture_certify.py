"""Old import path of the mixed classifier's certificates; they live in :mod:`robustlit.mixed.certificates`.

``certify_mixture_smoothed`` is the old name of
:func:`~robustlit.mixed.certificates.certify_smoothed_robust_branch`, which certifies
``(1 - alpha) g + alpha Smooth_sigma(h)``, not the evaluated mixture: report its result under
:data:`~robustlit.mixed.certificates.SMOOTHED_BRANCH_METRIC`.
"""

from robustlit.mixed.certificates import certify_mixture_lipschitz, certify_smoothed_robust_branch

certify_mixture_smoothed = certify_smoothed_robust_branch

__all__ = ["certify_mixture_lipschitz", "certify_mixture_smoothed", "certify_smoothed_robust_branch"]
