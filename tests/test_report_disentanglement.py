"""The report on runs with disentanglement scores: columns, figures and the reading.

Runs are fabricated (no training); their disentanglement.json is what the real metrics compute on
a code that mixes the factors less as β grows, so larger β is more disentangled by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaesweep.data.factors import FactorGrid, values_of
from vaesweep.disentanglement import MetricSettings, evaluate
from vaesweep.record import contract
from vaesweep.report.build import build_report
from vaesweep.testing.fabricate import fabricate_sweep

SIZES = (3, 4, 5)
GRID = FactorGrid(("a", "b", "c"), SIZES, values_of(*(range(s) for s in SIZES)), lambda c: c)
TINY = MetricSettings(num_train=300, num_test=200, batch_size=16, num_variance=300)
MIX = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]


def code_for(beta: float, seed: int):
    weight = min(1.0, np.log10(beta * 10) / 2.2)  # 0 at beta 0.1 -> 1 at beta 16

    def represent(classes: np.ndarray) -> np.ndarray:
        z = (classes - (np.array(SIZES) - 1) / 2) / np.array(SIZES)
        noise = np.random.default_rng(seed).normal(scale=0.02, size=z.shape)
        return weight * z + (1 - weight) * z @ MIX + noise

    return represent


def add_scores(run: Path) -> None:
    summary = json.loads((run / contract.SUMMARY_FILE).read_text())
    result = evaluate(
        GRID,
        code_for(summary["beta"], summary["seed"]),
        TINY,
        metrics=["mig", "sap", "factor_vae", "beta_vae"],
    )
    (run / contract.DISENTANGLEMENT_FILE).write_text(json.dumps(result))
    summary["disentanglement"] = {**result["scores"], "preset": "test"}
    (run / contract.SUMMARY_FILE).write_text(json.dumps(summary))


@pytest.mark.slow
def test_report_shows_scores_tradeoff_and_information(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    for run in fabricate_sweep(root, [0.1, 1.0, 4.0, 16.0], [0, 1], images=False):
        add_scores(run)
    index = build_report([root], fmt="md")
    report = index.parent
    for name in ("tradeoff", "disentanglement", "factor_information"):
        assert (report / f"{name}.png").stat().st_size > 1000, name
    table = pd.read_csv(report / "summary.csv")
    assert {"mig", "factor_vae", "beta_vae", "sap"} <= set(table.columns)
    assert table["mig"].notna().all()
    seeds = pd.read_csv(report / "seeds.csv")
    assert {"mig_mean", "mig_std"} <= set(seeds.columns)
    text = index.read_text()
    assert "Disentanglement: what a larger β bought" in text
    assert "MIG rises from" in text
    assert "Seeds: the largest standard deviation of MIG" in text


@pytest.mark.slow
def test_report_without_factor_runs_has_no_disentanglement(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    index = build_report([root], fmt="md")
    assert not (index.parent / "tradeoff.png").exists()
    assert "mig" not in pd.read_csv(index.parent / "summary.csv").columns
    assert "Disentanglement" not in index.read_text()


def test_single_runs_are_not_read_as_a_trend_and_collapse_is_flagged(tmp_path: Path) -> None:
    # One seed per beta, as in a first sweep: MIG nearly equal at the ends, peaked at beta 4,
    # and the beta-16 code collapsed (no active latent), as measured on data=shapes.
    root = tmp_path / "sweep"
    mig = {0.1: 0.059, 1.0: 0.064, 4.0: 0.28, 16.0: 0.064}
    for run in fabricate_sweep(root, list(mig), [0], images=False):
        add_scores(run)
        summary = json.loads((run / contract.SUMMARY_FILE).read_text())
        summary["disentanglement"]["mig"] = mig[summary["beta"]]
        if summary["beta"] == 16.0:
            summary["final"]["val"]["active_units"] = 0.0
            metrics = pd.read_csv(run / contract.METRICS_FILE)
            metrics.loc[metrics["split"] == "val", "active_units"] = 0.0
            metrics.to_csv(run / contract.METRICS_FILE, index=False)
        (run / contract.SUMMARY_FILE).write_text(json.dumps(summary))
    text = build_report([root], fmt="md").read_text()
    assert "MIG is about the same, 0.059 at β=0.1 and 0.064 at β=16" in text
    assert "with its peak in between: 0.28 at β=4" in text
    assert "β=16 no latent is active (the code has collapsed" in text
    assert "MIG rises" not in text
