"""The tables show what the runs did (exploratory tests: planned steps for a diverged run,
"<NA>" and "<NA>/8" for a run without epochs, a stack member's time without saying so)."""

from __future__ import annotations

import json
from pathlib import Path

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.render.tables import left_out_table, runs_table
from vaesweep.testing.fabricate import fabricate_sweep


def test_steps_done_and_dashes_for_missing_epochs(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(
        root,
        [0.01, 0.1, 1.0],
        images=False,
        converged=True,
        statuses={"beta=0.01": "diverged", "beta=0.1": "failed"},
    )
    runs = runs_table(build_sweep(load([root]))).set_index("run")
    assert runs.loc["beta=0.01", "steps"] == "52"  # diverged at epoch 2 of 5 (26 steps each)
    assert runs.loc["beta=1", "steps"] == "130"
    assert runs.loc["beta=0.1", "epochs"] == "–"
    left = left_out_table(build_sweep(load([root]))).set_index("run")
    assert left.loc["beta=0.1", "epochs"] == "–/5"
    assert "<NA>" not in runs.to_string() + left.to_string()


def test_a_stack_members_time_is_labelled_as_its_stacks(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    for run in root.glob("beta=*"):
        summary = json.loads((run / "summary.json").read_text())
        summary["timings"] = {"stack_size": 2}
        (run / "summary.json").write_text(json.dumps(summary))
    assert "time (s; a stacked run: its stack's)" in runs_table(build_sweep(load([root])))
