"""Shared pieces of the written reading: the group view, thresholds and number phrases.

:class:`Groups` reads seeds.csv's columns (``<metric>_mean``) so every number a sentence quotes
is one a reader can find in that table; thresholds that turn a number into a word live here so
the wording is decided by the data, never fixed in advance.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.numbers import fmt

#: beta_calib above this reads as over-regularised, below its inverse as autoencoder-like.
CALIB_BAND = 3.0
#: SSE at or above this share of the total variance is "close to the mean image".
MEAN_IMAGE_SHARE = 0.8
#: A total rate below this many nats per image is "little" (a code that tells apart fewer than
#: e^1 ~ 3 kinds of image).
LITTLE_RATE = 1.0
#: A run within this share of the linear reference's SSE is "on" the reference.
ON_REFERENCE = 0.05


def ok(x: float) -> bool:
    return x is not None and isinstance(x, int | float | np.floating) and math.isfinite(x)


def at(label: str) -> str:
    return f"at {label}" if label.startswith("β=") else f"for {label}"


class Groups:
    """The usable groups of a sweep in beta order, with shorthand accessors."""

    def __init__(self, sweep: SweepRecords) -> None:
        g = sweep.groups
        self.g = g[g["n_seeds"] > 0]
        self.table = sweep.table
        const = self.g["method"].fillna("constant").eq("constant")
        self.constant = self.g[const]
        self.sweep = sweep
        self.context = ""  # the other swept values the beta comparison holds fixed

    def v(self, group: str, col: str) -> float:
        try:
            x = float(self.g.loc[group, f"{col}_mean"])
        except (KeyError, TypeError, ValueError):
            return math.nan
        return x

    def label(self, group: str) -> str:
        return str(self.g.loc[group, "label"])

    def bname(self, group: str) -> str:
        """ "β=0.1": enough to name a group within a comparison that varies only beta."""
        return str(self.g.loc[group, "beta_name"])

    def best(self, col: str, high: bool, rows: pd.DataFrame | None = None) -> str | None:
        rows = self.g if rows is None else rows
        s = pd.to_numeric(rows.get(f"{col}_mean"), errors="coerce").dropna()
        if s.empty:
            return None
        return str(s.idxmax() if high else s.idxmin())

    def best_calibrated_elbo(self) -> str | None:
        """The mse group with the best ELBO at σ² = its own MSE (None without mse groups)."""
        mse_runs = self.g[self.g["likelihood"] == "mse"]
        return self.best("elbo_calib", high=True, rows=mse_runs) if not mse_runs.empty else None

    def by_beta(self) -> pd.DataFrame:
        """The constant-beta groups with beta > 0, in beta order."""
        return self.constant[self.constant["beta_mean"] > 0].sort_values("beta_mean")


def grey(sigma: float, sigma_255: float) -> str:
    """A decoder noise std in 8-bit grey levels, flagging one wider than the intensity range."""
    text = f"{fmt(sigma_255)} grey levels on the 0–255 scale"
    if sigma > 1:
        text += f", {fmt(sigma, 2)} times the whole intensity range"
    return text


def plural(n: float, word: str) -> str:
    from vaesweep.report.numbers import fmt_int

    return f"{fmt_int(n)} {word}{'' if n == 1 else 's'}"


def nats(x: float) -> str:
    """Nats of an estimator that can dip below zero: say so rather than print a bare minus."""
    return f"{fmt(x)} nats, zero within estimator noise" if x < 0 else f"{fmt(x)} nats"


def calib_words(bc: float) -> str:
    if bc > CALIB_BAND:
        return f"the prior is weighted about {fmt(bc, 2)} times more than the maximum-likelihood noise level would ask for (over-regularised: blur and collapse)"
    if bc < 1 / CALIB_BAND:
        return "the prior is weighted far less than the maximum-likelihood noise level would ask for (autoencoder-like: sharp reconstructions, poor prior samples)"
    return "close to the maximum-likelihood noise level (calibrated)"
