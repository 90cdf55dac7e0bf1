"""``vaesweep train``: one run under ``outputs/runs/<time>[_<name>]``, or continue one."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from vaesweep.bridge import launch as bridge_launch
from vaesweep.commands.interrupts import mark_interrupted, stop_signals_as_interrupt
from vaesweep.commands.launching import (
    LaunchOptions,
    launcher_overrides,
    runs_here,
    trains_remotely,
)
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.record.layout import one_component, runs_dir, writable_dir, writable_root
from vaesweep.record.run_record import RunRecord
from vaesweep.record.sweep_index import run_status
from vaesweep.record.sweep_lock import SweepLock
from vaesweep.record.sweep_plan import PLAN_FILE
from vaesweep.tracking import session as tracking

#: The largest process id Linux hands out (``/proc/sys/kernel/pid_max`` at most), for the
#: ``_<pid>`` that tells apart two runs started in the same second.
PID_MAX = 4194304


def timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _slug(text: str) -> str:
    return re.sub(r"[^\w.=,+-]+", "_", text).strip("_")[:80]


def train(
    overrides: list[str],
    opts: LaunchOptions,
    name: str | None,
    console: Console,
    resume: Path | None = None,
) -> dict[str, Any]:
    """One run under ``outputs/runs/<time>[_<name>]``, or continue the run in ``resume``.

    The run's launch is composed once and range-checked before anything is created
    (:func:`vaesweep.bridge.launch.prepare_job`); Hydra's multirun starts from that composition
    and :func:`vaesweep.bridge.launch.hydra_task` hands the job's typed config to the run.
    """
    if name is not None:
        # The folder is <time>_<name>, with _<pid> after it if that folder exists.
        added = f"{timestamp()}__{PID_MAX}"
        one_component(name, parent=runs_dir(opts.outputs), added=added)
    if resume is not None:
        overrides, run_dir = _resumable_run(resume, overrides)
        writable_dir(run_dir, "--resume")
    else:
        label = name or _slug(",".join(o for o in overrides if not o.startswith("hydra")))
        run_dir = runs_dir(opts.outputs) / (timestamp() + (f"_{label}" if label else ""))
        if run_dir.exists():
            run_dir = run_dir.with_name(run_dir.name + f"_{os.getpid()}")
    extra, _launcher, _ = launcher_overrides(opts, 1, overrides)
    # Validate, and load the data and claim the device, before creating anything.
    job = bridge_launch.prepare_job(
        [*overrides, *extra], run_dir=run_dir.resolve(), extra_dirs=opts.config_dirs
    )
    if resume is None:
        writable_root(opts.outputs)
    # Before torch is imported: a run trained here gets its MLflow process started now.
    tracking.preflight([job.config.tracker], opts.outputs, start=runs_here(opts))
    from vaesweep.run.assembly import fallback_notes, preflight  # torch: only when used

    remote = trains_remotely(opts)
    for note in fallback_notes(preflight(job.config, remote=remote)):
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"run dir: {run_dir}", highlight=False, markup=False, soft_wrap=True)
    created = not run_dir.exists()
    with contextlib.ExitStack() as locks:
        # Locked like a sweep (and, for a run inside a sweep, the sweep too): a second
        # `train --resume` of a run that is training is refused instead of writing beside it.
        if (run_dir.parent / PLAN_FILE).exists():
            locks.enter_context(SweepLock(run_dir.parent))
        locks.enter_context(SweepLock(run_dir, what="run"))
        try:
            with stop_signals_as_interrupt():
                results = bridge_launch.launch_job(job)
        except KeyboardInterrupt:
            mark_interrupted([run_dir])
            if run_status(run_dir)[0] in contract.FINISHED:
                # The stop came once the run had finished (while the launcher wound down):
                # it interrupted nothing, and there is nothing to resume.
                console.print(
                    "Stopped after the run had finished: nothing was interrupted.",
                    highlight=False,
                    markup=False,
                )
                finished = dict(run_status(run_dir)[1] or {})
                return {**finished, "run_dir": str(run_dir)}
            Console(stderr=True).print(
                "Interrupted; the run keeps its last finished epoch. Continue with:\n"
                f"  vaesweep train --resume {shlex.quote(str(run_dir))}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            raise
        except bridge_launch.JobsEnded as ended:
            # The job was cancelled or killed (scancel, a lost node): it has ended, and the
            # run continues from its last checkpoint with --resume.
            for line in ended.lines:
                console.print(f"{line} before the run finished", highlight=False, markup=False)
            mark_interrupted([run_dir])
            console.print(
                f"continue with: vaesweep train --resume {shlex.quote(str(run_dir))}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            results = []
        except bridge_launch.SubmissionRefused as refused:
            locks.close()
            if created and resume is None:  # nothing ran: the same command works once fixed
                shutil.rmtree(run_dir, ignore_errors=True)
                raise UserError(f"{refused}; nothing was written") from None
            raise
    summary: dict[str, Any] = results[0].return_value if results else {}
    summary = summary or dict(run_status(run_dir)[1] or {})
    summary["run_dir"] = str(run_dir)
    return summary


def _resumable_run(run_dir: Path, overrides: list[str]) -> tuple[list[str], Path]:
    """The stored overrides of an interrupted single run (its summary.json)."""
    if overrides:
        raise UserError("--resume takes the run's own overrides; drop " + " ".join(overrides))
    status, summary = run_status(run_dir)
    if summary is None:
        raise UserError(f"--resume {run_dir}: not a run directory (no readable summary.json)")
    if status == contract.COMPLETED:
        raise UserError(f"{run_dir} already completed; nothing to resume")
    RunRecord(run_dir).check_resumable()
    stored = [o for o in summary.get("overrides") or [] if not o.startswith("train.progress")]
    return stored, run_dir
