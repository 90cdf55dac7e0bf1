"""End to end on a factor dataset: a real sweep on data=shapes records the disentanglement
metrics, `vaesweep eval --disentanglement` reproduces them, and the report shows the trade-off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vaesweep.record import contract

VAESWEEP = [sys.executable, "-m", "vaesweep"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VAESWEEP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy()
    )


@pytest.mark.slow
def test_shapes_sweep_records_metrics_and_reports_the_tradeoff(
    outputs: Path, tiny: list[str]
) -> None:
    args = ["sweep", "data=shapes", "beta=0.1,8", *tiny, "loss.likelihood=bernoulli"]
    sweep = run([*args, "eval.disentanglement=quick", "--name", "dis"], outputs.parent)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    runs = sorted((outputs / "sweeps" / "dis").glob("beta=*"))
    assert len(runs) == 2
    for d in runs:
        summary = json.loads((d / contract.SUMMARY_FILE).read_text())
        scores = summary["disentanglement"]
        assert set(contract.DISENTANGLEMENT_SCORES) <= set(scores)
        assert scores["preset"] == "quick" and 0 <= scores["mig"] <= 1
        assert scores["factors"] == ["shape", "size", "colour", "posX", "posY"]
        details = json.loads((d / contract.DISENTANGLEMENT_FILE).read_text())
        assert len(details["metrics"]["mig"]["mutual_information"]) == 4  # latent_dim=4
        assert details["scores"]["mig"] == pytest.approx(scores["mig"])
    # The metrics again from the checkpoint: the same numbers (fixed seeds, same model).
    again = run(
        ["eval", str(runs[0]), "--iwae-samples", "0", "--disentanglement", "--preset", "quick"],
        outputs.parent,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    (entry,) = json.loads((runs[0] / contract.EVAL_FILE).read_text())["evaluations"].values()
    assert entry["disentanglement_preset"] == "quick"
    result = entry["disentanglement"]
    first = json.loads((runs[0] / contract.SUMMARY_FILE).read_text())["disentanglement"]
    assert result["mig"] == pytest.approx(first["mig"])
    assert result["factor_vae"] == pytest.approx(first["factor_vae"])
    report = run(["report", "--format", "md"], outputs.parent)
    assert report.returncode == 0, report.stderr[-2000:]
    folder = outputs / "sweeps" / "dis" / "report"
    for png in ("tradeoff", "disentanglement", "factor_information"):
        assert (folder / f"{png}.png").stat().st_size > 1000
    table = pd.read_csv(folder / "summary.csv")
    assert table["mig"].notna().all() and table["factor_vae"].notna().all()
    assert "Disentanglement: what a larger β bought" in (folder / "index.md").read_text()
