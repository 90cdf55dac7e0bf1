"""What the report tolerates in its input (exploratory tests): a summary field of the wrong
type, and the same directory given twice."""

from __future__ import annotations

import json
from pathlib import Path

from vaesweep.report.build import build_report
from vaesweep.report.data.load import load
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep


def test_a_config_that_is_not_an_object_counts_as_missing(tmp_path: Path) -> None:
    run = tmp_path / "r"
    fabricate_run(run, beta=0.1, images=False)
    summary = json.loads((run / "summary.json").read_text())
    summary["config"] = [1]
    (run / "summary.json").write_text(json.dumps(summary))
    out = build_report([run], fmt="md", out=tmp_path / "report")
    assert "field 'config' is not an object; ignored it" in out.read_text()


def test_the_same_dir_twice_counts_its_runs_once(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    assert len(load([root, root]).runs) == 2
    assert len(load([root, tmp_path / "s" / ".." / "s"]).runs) == 2
    assert len(load([root, root / "beta=0.1"]).runs) == 2  # a run also given on its own
