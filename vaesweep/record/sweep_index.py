"""``runs.csv``: one row per planned run of a sweep with its status and final metrics.

The sweep side rebuilds the index from the run directories on disk after every finished job
(the launcher's task wrapper in :mod:`vaesweep.bridge.launch`, under a lock since parallel
runs finish at the same time), while runs train (the sweep's progress monitor, as runs start
and finish epochs), once more when the sweep ends, and ``vaesweep ls`` rebuilds the index of a
sweep whose driver has gone (killed before it could), so it is right after any crash: the
files are the truth, the index is a view of them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from vaesweep.record import contract
from vaesweep.record.files import atomic_write_text, exclusive_lock, read_json
from vaesweep.record.run_record import RunRecord
from vaesweep.record.sweep_lock import holder_gone, is_locked
from vaesweep.record.sweep_plan import INDEX_FILE, SweepPlan

#: Serialises concurrent rebuilds of runs.csv (parallel runs finish together).
INDEX_LOCK_FILE = ".index.lock"

#: Final validation metrics copied into the index, as ``val_<name>`` columns (the prefix keeps
#: them apart from swept keys such as ``kl=warmup``).
INDEX_METRICS = (
    "recon",
    "kl",
    "elbo",
    "mse",
    "psnr",
    "active_units",
    "beta_t",
    "beta_sum",
    "sigma2_eff",
    "beta_calib",
    "mi",
    "marginal_kl",
)


def run_status(run_dir: Path) -> tuple[str, dict[str, Any] | None]:
    """(status, summary) of a run directory; ``pending`` when it has no readable summary.

    A summary that says ``running`` of a run whose process is dead (killed with SIGKILL,
    which leaves no chance to say so; see :func:`~vaesweep.record.sweep_lock.holder_gone`)
    reads ``interrupted``: resumable from its last checkpoint, which is what it is. Every
    view (``ls``, ``runs.csv``, the sweep's progress, ``--resume``) asks here.
    """
    path = run_dir / contract.SUMMARY_FILE
    if not path.exists():
        return contract.PENDING, None
    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return contract.PENDING, None
    return live_status(str(summary.get("status", contract.PENDING)), run_dir), summary


def live_status(status: str, run_dir: Path) -> str:
    """``status`` as a summary says it, except ``running`` of a run whose process is dead."""
    if status == contract.RUNNING and holder_gone(run_dir):
        return contract.INTERRUPTED
    return status


def mark_interrupted(run_dirs: list[Path], *, unless_locked: bool = False) -> list[Path]:
    """Mark each run whose summary still says ``running`` as ``interrupted``; return them.

    For the process that was training them, or for a driver once every job it launched has
    ended: a job killed from outside (``scancel``, a node lost, SIGKILL) never writes its own
    end. ``unless_locked``: leave alone a run whose lock another process holds (a job that
    still trains it, e.g. on a cluster after its driver was stopped).
    """
    marked = []
    for run_dir in run_dirs:
        record = RunRecord(run_dir)
        summary = record.read_summary()
        if not summary or summary.get("status") != contract.RUNNING:
            continue
        if unless_locked and is_locked(run_dir):
            continue
        record.summary = summary
        record.update_summary(
            status=contract.INTERRUPTED,
            error="interrupted before it finished; resumable from its last checkpoint",
            error_kind=None,
        )
        marked.append(run_dir)
    return marked


def index_rows(sweep_dir: Path, plan: SweepPlan) -> list[dict[str, Any]]:
    rows = []
    for run in plan.runs:
        status, summary = run_status(sweep_dir / run.name)
        row: dict[str, Any] = {"run": run.name, **run.values, "status": status}
        # A damaged record (a list where a mapping belongs) shows empty cells, not a crash
        # that would hide every other sweep from `ls`.
        summary = _mapping(summary)
        val = _mapping(_mapping(summary.get("final")).get("val"))
        iwae = _mapping(summary.get("iwae"))
        row.update(
            epochs_done=summary.get("epochs_done"),
            **{f"val_{k}": val.get(k) for k in INDEX_METRICS},
            iwae_nll=iwae.get("nll"),
            bpd=iwae.get("bpd"),
            wall_time_s=summary.get("wall_time_s"),
            error=summary.get("error"),
        )
        rows.append(row)
    return rows


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def refresh_index(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rebuild ``runs.csv`` from the run directories; returns its rows."""
    sweep_dir = Path(sweep_dir)
    plan = SweepPlan.load(sweep_dir)
    with exclusive_lock(sweep_dir / INDEX_LOCK_FILE):
        rows = index_rows(sweep_dir, plan)
        header = list(rows[0]) if rows else ["run", "status"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        path = sweep_dir / INDEX_FILE
        # Unchanged, left alone: its time says when the sweep last changed (the report's
        # newest sweep), and views such as `ls` refresh it too.
        if not path.is_file() or path.read_text(encoding="utf-8") != buf.getvalue():
            atomic_write_text(path, buf.getvalue())
        return rows


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts
