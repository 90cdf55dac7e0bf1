"""Issue 11 item 13: "not converged" fires on the old controller defaults and not on a settled one.

Measured 50-epoch trajectories (validation rows of ``vaesweep train kl=geco``, new defaults, and
``vaesweep train loss.likelihood=gaussian_learned loss.sigma_lr_scale=1``, the old sigma, on
the default digits data and steps) are written into fabricated records by the real writers.
(The old GECO defaults are not here: their beta_t moves only 2% over the last 10 epochs while
the constraint is still unmet, which a beta_t-only check cannot see.) The settled case is a learned sigma sitting at its optimum
sqrt(MSE) along a measured 50-epoch val MSE trajectory (``vaesweep sweep beta=0.01,0.1,1``,
the beta = 0.01 run), which is where the new ``loss.sigma_lr_scale`` brings it by epoch 10
(README, "Beyond a constant beta"): the model's own slow improvement must not read as an
unsettled sigma.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.testing.fabricate import fabricate_run

#: Val beta_t per epoch, kl=geco with the new defaults (kappa 0.15, alpha 0.9, nu 0.003).
# fmt: off
GECO_NEW = [
    0.64976, 0.51514, 0.43518, 0.38077, 0.33941, 0.30754, 0.28137, 0.26032, 0.24402, 0.2308,
    0.21997, 0.21086, 0.20308, 0.19642, 0.19061, 0.18558, 0.18123, 0.1774, 0.17413, 0.17125,
    0.16874, 0.16654, 0.16463, 0.16299, 0.16164, 0.16058, 0.15953, 0.15868, 0.1581, 0.15761,
    0.15723, 0.15704, 0.15675, 0.15672, 0.15675, 0.15693, 0.1571, 0.15746, 0.1578, 0.15797,
    0.15836, 0.15886, 0.15945, 0.15997, 0.16058, 0.16123, 0.1619, 0.16252, 0.16319, 0.16394,
]
# fmt: on
#: Val decoder sigma per epoch, gaussian_learned with log sigma at train.lr (the old default).
# fmt: off
SIGMA_OLD = [
    0.9766, 0.95105, 0.92625, 0.90227, 0.87906, 0.85655, 0.83475, 0.81359, 0.79303, 0.77309,
    0.75373, 0.73493, 0.71666, 0.69893, 0.68171, 0.66497, 0.6487, 0.63288, 0.61751, 0.60255,
    0.58802, 0.57384, 0.56006, 0.54667, 0.53362, 0.52087, 0.50846, 0.49636, 0.48454, 0.47302,
    0.4618, 0.45085, 0.4402, 0.42984, 0.41973, 0.40983, 0.40019, 0.39079, 0.38162, 0.37274,
    0.36408, 0.35567, 0.34749, 0.33954, 0.33176, 0.32418, 0.31683, 0.30967, 0.30272, 0.29591,
]
# fmt: on
#: Val MSE per epoch of a 50-epoch digits run (beta = 0.01); a settled sigma is its square root.
# fmt: off
VAL_MSE = [
    0.07785, 0.0699, 0.05073, 0.03749, 0.03275, 0.0282, 0.02309, 0.01935, 0.01663, 0.01528,
    0.01418, 0.01334, 0.01215, 0.01199, 0.01112, 0.01076, 0.0105, 0.01006, 0.00974, 0.00956,
    0.00914, 0.009, 0.00876, 0.00851, 0.00844, 0.00834, 0.00815, 0.0083, 0.00794, 0.00788,
    0.00772, 0.00767, 0.00751, 0.00758, 0.0075, 0.00735, 0.0073, 0.00729, 0.00712, 0.00711,
    0.00714, 0.00707, 0.00742, 0.00714, 0.00684, 0.00697, 0.00685, 0.00674, 0.00666, 0.00663,
]
# fmt: on
SIGMA_SETTLED = [math.sqrt(m) for m in VAL_MSE]

CASES = {
    # name: (method, likelihood, column, per-epoch values, still moving?)
    "geco_new": ("geco", "mse", "beta_t", GECO_NEW, False),
    "sigma_old": ("constant", "gaussian_learned", "decoder_sigma", SIGMA_OLD, True),
    "sigma_settled": ("constant", "gaussian_learned", "decoder_sigma", SIGMA_SETTLED, False),
}


def _write(root: Path, name: str) -> None:
    method, likelihood, column, values, _ = CASES[name]
    run = root / name
    fabricate_run(
        run, beta=1.0, method=method, likelihood=likelihood, epochs=len(values), images=False
    )
    path = run / "metrics.csv"
    m = pd.read_csv(path)
    for split in ("train", "val"):
        rows = m["split"] == split
        m.loc[rows, column] = [values[int(e) - 1] for e in m.loc[rows, "epoch"]]
    m.to_csv(path, index=False)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("settling")
    for name in CASES:
        _write(root, name)
    t = build_sweep(load([root])).table
    return t.set_index(t["run"].astype(str).map(lambda r: Path(r).name))


@pytest.mark.parametrize("name", list(CASES))
def test_not_converged_fires_on_old_defaults_not_on_a_settled_run(
    table: pd.DataFrame, name: str
) -> None:
    _, _, column, values, moving = CASES[name]
    row = table.loc[name]
    key, label = (
        ("beta_t_change", "β_t")
        if column == "beta_t"
        else ("sigma_change", "the learned decoder σ")
    )
    # Own reference: the last epoch against the last one at least 20% of the run earlier.
    n = len(values)
    before = math.floor(n - max(1.0, 0.2 * n))
    expected = values[n - 1] / values[before - 1] - 1
    assert row[key] == pytest.approx(expected, rel=1e-6)
    assert (label in str(row["unsettled"])) is moving
