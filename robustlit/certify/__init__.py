"""Randomized-smoothing certification, pure torch/scipy (no Lightning): sampling, Clopper-Pearson bounds,
constant-sigma (Cohen et al. 2019) and input-dependent-sigma (Suekenik et al. 2022) radii, sigma
functions, and certified-accuracy reports. See docs/smoothing.md.
"""

from robustlit.certify.bounds import binomial_abstain_pvalue, clopper_pearson_lower
from robustlit.certify.radius import (
    cohen_radius,
    curse_of_dimensionality_ratio_bounds,
    input_dependent_radius,
    worst_case_xi,
)
from robustlit.certify.report import (
    TSV_HEADER,
    CertificationRow,
    CertificationWriter,
    average_certified_radius,
    certified_accuracy,
    read_rows,
)
from robustlit.certify.sigma import ConstantSigma, KNNSigma, SigmaFunction
from robustlit.certify.smoothing import ABSTAIN, CertifyResult, SmoothedClassifier

__all__ = [
    "ABSTAIN",
    "TSV_HEADER",
    "CertificationRow",
    "CertificationWriter",
    "CertifyResult",
    "ConstantSigma",
    "KNNSigma",
    "SigmaFunction",
    "SmoothedClassifier",
    "average_certified_radius",
    "binomial_abstain_pvalue",
    "certified_accuracy",
    "clopper_pearson_lower",
    "cohen_radius",
    "curse_of_dimensionality_ratio_bounds",
    "input_dependent_radius",
    "read_rows",
    "worst_case_xi",
]
