"""The sweep's progress lines: counts, the epoch-based estimate, the live line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from vaesweep.commands.sweep_monitor import RunProgress, Snapshot, SweepMonitor, estimate_left
from vaesweep.record.sweep_plan import PlannedRun, SweepPlan


def _snap(*runs: tuple[str, int, int | None]) -> Snapshot:
    return Snapshot({f"r{i}": RunProgress(s, d, e) for i, (s, d, e) in enumerate(runs)})


def test_epochs_count_finished_runs_whole_and_unstarted_runs_as_typical() -> None:
    snap = _snap(
        ("completed", 10, 10), ("diverged", 3, 10), ("running", 4, 10), ("pending", 0, None)
    )
    # completed 10 + diverged (will not train further) 10 + running 4 + pending 0, of 4 x 10
    assert snap.epochs() == (24, 40)
    assert snap.counts() == {"completed": 1, "diverged": 1, "running": 1, "pending": 1}


def test_estimate_uses_the_rate_since_the_launch_started() -> None:
    start = _snap(("completed", 10, 10), ("pending", 0, None))  # resumed: 10 epochs already done
    now = _snap(("completed", 10, 10), ("running", 5, 10))
    # 5 epochs in 10 s since the start, 5 left -> 10 s
    assert estimate_left(start, now, elapsed=10.0) == pytest.approx(10.0)
    assert estimate_left(start, start, elapsed=10.0) is None  # nothing trained yet


def _sweep(tmp_path: Path, summaries: dict[str, dict]) -> tuple[Path, SweepPlan]:
    plan = SweepPlan(
        name="s",
        overrides=["beta=0.1,1,3"],
        swept_keys=["beta"],
        runs=[PlannedRun(f"beta={b}", {"beta": b}, [f"beta={b}"]) for b in ("0.1", "1", "3")],
    )
    plan.save(tmp_path)
    for name, summary in summaries.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    return tmp_path, plan


def test_lines_name_the_run_the_counts_and_the_epochs(tmp_path: Path) -> None:
    sweep_dir, plan = _sweep(
        tmp_path,
        {
            "beta=0.1": {"status": "completed", "epochs": 20, "epochs_done": 20},
            "beta=1": {"status": "running", "epochs": 20, "epochs_done": 7},
        },
    )
    out = io.StringIO()
    monitor = SweepMonitor(sweep_dir, plan, Console(file=out, width=200))
    now = monitor.snapshot()
    assert now.runs["beta=3"] == RunProgress("pending", 0, None)
    assert now.epochs() == (27, 60)
    line = monitor.finished_line("beta=0.1", "completed", 1, 3, now).plain
    assert line.startswith("[1/3] completed beta=0.1  (1 completed, 1 running, 1 pending; ")
    assert "elapsed" in line
    live = monitor.live_line(now).plain
    assert live.startswith("running beta=1 7/20 | 1/3 finished | ")


def test_runs_finishing_in_one_poll_get_numbers_and_counts_that_agree(tmp_path: Path) -> None:
    """Members of a stack finish together: each line counts only the runs announced so far."""
    done = {"status": "completed", "epochs": 5, "epochs_done": 5}
    sweep_dir, plan = _sweep(tmp_path, {"beta=0.1": done, "beta=1": done})
    out = io.StringIO()
    monitor = SweepMonitor(sweep_dir, plan, Console(file=out, width=200), poll_s=60)
    monitor._poll()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] completed beta=0.1  (1 completed, 1 running, 1 pending; ")
    assert lines[1].startswith("[2/3] completed beta=1  (2 completed, 1 pending; ")


def test_a_finished_run_is_printed_once(tmp_path: Path) -> None:
    sweep_dir, plan = _sweep(tmp_path, {})
    out = io.StringIO()
    monitor = SweepMonitor(sweep_dir, plan, Console(file=out, width=200), poll_s=60).start()
    (sweep_dir / "beta=1").mkdir()
    (sweep_dir / "beta=1" / "summary.json").write_text(
        json.dumps({"status": "diverged", "epochs": 5, "epochs_done": 2})
    )
    monitor._poll()
    monitor.stop()  # polls once more
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[1/3] diverged  beta=1  (1 diverged, 2 pending")


def test_runs_csv_shows_the_runs_that_have_started(tmp_path: Path) -> None:
    """runs.csv was rebuilt only as jobs ended: a sweep killed mid-way left `pending` rows for
    runs with epochs of metrics. The monitor rebuilds it when a run starts or ends an epoch."""
    from vaesweep.record.sweep_lock import SweepLock
    from vaesweep.testing.fabricate import fabricate_sweep

    sweep = tmp_path / "s"
    fabricate_sweep(sweep, [0.1, 1.0], statuses={"beta=0.1": "running"}, images=False)
    (sweep / "runs.csv").write_text("run,beta,status\nbeta=0.1,0.1,pending\nbeta=1,1,pending\n")
    plan = SweepPlan.load(sweep)
    monitor = SweepMonitor(sweep, plan, Console(file=io.StringIO()), poll_s=60)
    with SweepLock(sweep / "beta=0.1", what="run"):  # its job is training it
        monitor._poll()
    rows = (sweep / "runs.csv").read_text().splitlines()
    assert rows[1].startswith("beta=0.1,0.1,running,") and rows[2].startswith("beta=1,1,completed")
