"""Disentanglement metrics on the means of q(z|x) for datasets with known factors.

BetaVAE score (Higgins et al. 2017), FactorVAE score (Kim & Mnih 2018), MIG (Chen et al. 2018),
SAP (Kumar et al. 2018) and DCI (Eastwood & Williams 2018), with disentanglement_lib's published
settings (Locatello et al. 2019) or a quick set. Pure numpy and scikit-learn: the caller supplies
the representation as a function of factor classes, so nothing here knows about torch or models.

The metrics (``evaluate``, ``METRICS``, ``HEADLINE``, ``headline``) are imported on first use:
scikit-learn takes about 1.5 s to import, which every run on a dataset without factors (and
every ``vaesweep`` command) would otherwise pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vaesweep.disentanglement.settings import PRESETS, PUBLISHED, QUICK, MetricSettings

if TYPE_CHECKING:
    from vaesweep.disentanglement.evaluate import HEADLINE, METRICS, evaluate, headline

_METRIC_NAMES = ("HEADLINE", "METRICS", "evaluate", "headline")

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


def __getattr__(name: str) -> Any:
    if name not in _METRIC_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("vaesweep.disentanglement.evaluate")
    # Bound here for good: importing the submodule set this package's ``evaluate`` to it.
    globals().update({n: getattr(module, n) for n in _METRIC_NAMES})
    return globals()[name]
