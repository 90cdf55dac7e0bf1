"""The report's opening says how many runs diverged and where (exploratory test: 2 of 4 runs
diverged and the opening compared the other two as if the sweep had two βs)."""

from __future__ import annotations

from pathlib import Path

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import build_reading
from vaesweep.testing.fabricate import fabricate_sweep


def test_the_opening_counts_the_diverged_runs_and_names_their_settings(tmp_path: Path) -> None:
    root = tmp_path / "div"
    fabricate_sweep(
        root,
        [0.0, 1e-5, 1e-4, 1.0],
        images=False,
        statuses={"beta=0": "diverged", "beta=1e-05": "diverged"},
    )
    reading = build_reading(build_sweep(load([root])))
    assert reading.answer[0].startswith("2 of 4 runs diverged (β=0; β=1e-05): ")
    assert "compares only the 2 run(s) that finished" in reading.answer[0]
