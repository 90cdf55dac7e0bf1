"""A run that diverges in its first epoch is reported as that, not as a lost metrics.csv (a user
audit: the trainer stops at the first non-finite step, before the epoch's rows, and the report
listed "no metrics.csv" among the problems reading the records)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import build_reading
from vaesweep.testing.fabricate import fabricate_sweep

FIRST = "beta=1: diverged in its first epoch, before it recorded any finite metrics"


def _sweep(root: Path, diverge_at: int) -> SweepRecords:
    fabricate_sweep(
        root, [0.01, 0.1, 1.0], images=False, statuses={"beta=1": "diverged"}, diverge_at=diverge_at
    )
    return build_sweep(load([root]))


@pytest.mark.parametrize("diverge_at", [0, 1], ids=["within epoch 1", "at the end of epoch 1"])
def test_first_epoch_divergence_is_named_not_a_missing_file(
    tmp_path: Path, diverge_at: int
) -> None:
    sweep = _sweep(tmp_path / "s", diverge_at)
    # diverge_at=0: no metrics.csv at all, as the trainer leaves it; 1: one row, not finite.
    assert (tmp_path / "s" / "beta=1" / "metrics.csv").exists() == bool(diverge_at)
    assert not any("metrics.csv" in p for p in sweep.problems), sweep.problems
    reading = build_reading(sweep)
    sections = dict(reading.sections)
    assert "Problems reading the records" not in sections
    (line,) = sections["Runs left out"]
    assert line.startswith(FIRST), line
    assert "1 of 3 runs diverged (β=1)" in " ".join(reading.answer)


def test_a_later_divergence_keeps_its_epochs(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path / "s", 3)
    (line,) = dict(build_reading(sweep).sections)["Runs left out"]
    assert line.startswith("beta=1: diverged after 3 of 5 epochs"), line


def test_a_lost_metrics_file_is_still_a_problem(tmp_path: Path) -> None:
    """A diverged run that had finished epochs and has no metrics.csv lost the file."""
    root = tmp_path / "s"
    fabricate_sweep(root, [0.01, 1.0], images=False, statuses={"beta=1": "diverged"})
    (root / "beta=1" / "metrics.csv").unlink()
    sweep = build_sweep(load([root]))
    assert "beta=1: no metrics.csv" in sweep.problems
