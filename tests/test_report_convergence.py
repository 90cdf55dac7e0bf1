"""The report's convergence numbers: a fall is a share of where the window started, and one
verdict per run serves the tables and the reading (exploratory tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.testing.fabricate import fabricate_run


def test_a_record_with_the_old_fall_is_measured_again_from_its_metrics(tmp_path: Path) -> None:
    """Records written before ``relative_to`` divided the fall by the end value."""
    run = tmp_path / "beta=0.1"
    fabricate_run(run, beta=0.1, epochs=10, images=False, converged=False, rel_change=0.3346)
    summary = json.loads((run / "summary.json").read_text())
    del summary["convergence"]["relative_to"]
    (run / "summary.json").write_text(json.dumps(summary))
    rows = [
        ln.split(",") for ln in (run / "metrics.csv").read_text().splitlines()[1:] if ",val," in ln
    ]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    loss = {int(r[header.index("step")]): float(r[header.index("loss")]) for r in rows}
    start, end = loss[9 * 26], loss[10 * 26]
    t = build_sweep(load([run])).table
    assert t["last10_change"].iloc[0] == pytest.approx((start - end) / start)


def test_a_current_record_is_read_as_written(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "r", beta=0.1, images=False, converged=False, rel_change=0.25)
    t = build_sweep(load([tmp_path / "r"])).table
    assert t["last10_change"].iloc[0] == pytest.approx(0.25)
