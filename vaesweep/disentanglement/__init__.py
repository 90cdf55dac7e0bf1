"""Disentanglement metrics on the means of q(z|x) for datasets with known factors.

BetaVAE score (Higgins et al. 2017), FactorVAE score (Kim & Mnih 2018), MIG (Chen et al. 2018),
SAP (Kumar et al. 2018) and DCI (Eastwood & Williams 2018), with disentanglement_lib's published
settings (Locatello et al. 2019) or a quick set. Pure numpy and scikit-learn: the caller supplies
the representation as a function of factor classes, so nothing here knows about torch or models.
"""

from vaesweep.disentanglement.evaluate import HEADLINE, METRICS, evaluate, headline
from vaesweep.disentanglement.settings import PRESETS, PUBLISHED, QUICK, MetricSettings

__all__ = [
    "HEADLINE",
    "METRICS",
    "PRESETS",
    "PUBLISHED",
    "QUICK",
    "MetricSettings",
    "evaluate",
    "headline",
]
