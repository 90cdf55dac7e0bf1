"""``vaesweep sweep``: plan, take the lock, launch, watch, and keep the index current.

:func:`sweep_command` is the whole command as the CLI calls it (its tables, its exit code).
Planning (:mod:`vaesweep.commands.sweep_planning`) composes and range-checks every run
(:func:`vaesweep.bridge.grid.validate_jobs`) before anything is written; the plan goes to
``sweep.json``, the index ``runs.csv`` is rebuilt
before the launch, after every finished run (:func:`vaesweep.bridge.launch.hydra_task`) and
when the launch ends, and :class:`~vaesweep.commands.sweep_monitor.SweepMonitor` prints
progress while it runs.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from vaesweep.bridge import launch as bridge_launch
from vaesweep.bridge.overrides import run_overrides
from vaesweep.commands import terminal_tables as tables
from vaesweep.commands.interrupts import mark_interrupted, stop_signals_as_interrupt
from vaesweep.commands.launching import (
    LaunchOptions,
    jobs_outlive_driver,
    launcher_overrides,
)
from vaesweep.commands.sweep_monitor import SweepMonitor
from vaesweep.commands.sweep_planning import check_new, plan_new_or_resumed
from vaesweep.commands.sweep_stacks import (
    launch_units,
    stack_launch,
)
from vaesweep.config.tracker import TrackerConfig
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.record.run_names import run_name
from vaesweep.record.sweep_index import refresh_index, run_status
from vaesweep.record.sweep_lock import SweepLock
from vaesweep.record.sweep_plan import PLAN_FILE, SweepPlan
from vaesweep.tracking import session as tracking


@dataclass
class Launch:
    """What a sweep's launch needs, worked out by :func:`check_launch`."""

    keep: Callable[[list[str]], bool] | None  #: which jobs to launch (a resumed sweep)
    units: int  #: jobs to launch (runs or stacks)
    extra: list[str]  #: the launcher's overrides
    launcher: str
    threads: int | None  #: torch threads per run


def check_launch(
    plan: SweepPlan, sweep_dir: Path, opts: LaunchOptions, resume: bool, dry_run: bool = False
) -> Launch:
    """What :func:`sweep` checks before it writes anything, also run by ``--dry-run``: the first
    job composed as it will be launched (launcher and ``hydra.*`` settings included) and the
    trackers' packages and store (``dry_run``: without creating it)."""
    user = list(plan.overrides)
    keep, units = _unfinished(plan, sweep_dir) if resume else (None, launch_units(plan))
    # Checked before the lock creates the directory: a typo leaves nothing behind.
    extra, launcher, threads = launcher_overrides(opts, max(1, units), user)
    # Hydra's own settings and group choices (hydra/launcher=NAME), which no run's overrides
    # hold: the launch uses them, so the check does.
    hydra_settings = [o for o in user if o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    first_job = [*run_overrides(plan.runs[0].overrides), *hydra_settings, *extra]
    bridge_launch.check_launch(first_job, sweep_dir, opts.config_dirs)
    tracking.preflight(_trackers(plan, opts), opts.outputs, create=not dry_run)
    return Launch(keep, units, extra, launcher, threads)


def sweep_command(
    overrides: list[str],
    opts: LaunchOptions,
    name: str | None,
    resume: Path | None,
    dry_run: bool,
    console: Console,
    errors: Console,
) -> int:
    """``vaesweep sweep``: plan (or reload) the grid, print it, run it, print the outcome.

    Returns the exit code: 0 every run completed, 1 some did not (the resume command is
    printed when some can continue), 130 interrupted (``errors`` says how to resume).
    """
    plan, sweep_dir = plan_new_or_resumed(overrides, opts, name, resume)
    if dry_run:  # what the sweep would refuse before writing, it refuses here too
        check_launch(plan, sweep_dir, opts, resume is not None, dry_run=True)
    tables.print_grid(console, plan, sweep_dir, dry_run)
    for note in opts.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if dry_run:
        return 0
    resume_line = f"vaesweep sweep --resume {shlex.quote(str(sweep_dir))}"
    try:
        rows = sweep(plan, sweep_dir, opts, console, resume=resume is not None)
    except KeyboardInterrupt:
        errors.print(
            f"[yellow]Interrupted.[/] Finished runs are kept; continue with:\n  "
            f"{escape(resume_line)}",
            soft_wrap=True,  # a command is never broken across lines
        )
        return 130
    tables.print_sweep(console, rows, plan.swept_keys, sweep_dir)
    if any(r["status"] not in contract.FINISHED for r in rows):
        # Cancelled or killed jobs: their runs continue from their last checkpoint.
        console.print(f"resume: {resume_line}", markup=False, highlight=False, soft_wrap=True)
    return 0 if all(r["status"] == contract.COMPLETED for r in rows) else 1


def sweep(
    plan: SweepPlan, sweep_dir: Path, opts: LaunchOptions, console: Console, resume: bool
) -> list[dict[str, Any]]:
    """Run (or resume) ``plan`` into ``sweep_dir``; returns the index rows.

    A resumed sweep launches only what is left: the runs (or stacks) not yet completed; on
    SLURM, one array task each. Jobs that end without a result (``scancel``, a failed node)
    are waited out with the others, then named, and their runs marked ``interrupted``.
    """
    user = list(plan.overrides)
    launch = check_launch(plan, sweep_dir, opts, resume)
    trackers = _trackers(plan, opts)
    if not resume:
        check_new(sweep_dir)
    created = not sweep_dir.exists()
    refused: bridge_launch.SubmissionRefused | None = None
    if opts.resume_note:
        console.print(opts.resume_note, highlight=False, markup=False)
    with SweepLock(sweep_dir):
        if resume:
            plan.resumed.append(datetime.now().isoformat(timespec="seconds"))
        elif (sweep_dir / PLAN_FILE).exists():
            raise UserError(
                f"{sweep_dir} was claimed by another sweep just now; use another --name"
            )
        plan.launcher, plan.jobs, plan.threads_per_run = launch.launcher, opts.jobs, launch.threads
        plan.save(sweep_dir)
        refresh_index(sweep_dir)
        tracking.open_sweep(
            trackers, sweep_dir, plan.name, plan.swept_keys, opts.outputs, len(plan.runs)
        )
        bars_off = "train.progress=off" in [*user, *launch.extra]
        monitor = SweepMonitor(sweep_dir, plan, console, live=bars_off).start()
        run_dirs = [sweep_dir / r.name for r in plan.runs]
        outlive = jobs_outlive_driver(opts)
        late_stop = False
        try:
            with stop_signals_as_interrupt():
                if launch.units:
                    _launch(plan, sweep_dir, opts, [*launch.extra], launch.keep)
        except bridge_launch.JobsEnded as ended:
            monitor.stop()
            for line in ended.lines:
                console.print(f"{line} before its run finished", highlight=False, markup=False)
        except bridge_launch.SubmissionRefused as err:
            refused = err
        except KeyboardInterrupt:
            # The launcher has stopped its workers (jobs on a cluster go on, holding their
            # runs' locks); the sweep's lock is still ours, so what says `running` and is not
            # locked was ours.
            mark_interrupted(run_dirs, unless_locked=outlive)
            # A stop that came once every run had finished (while the launcher wound down)
            # interrupted nothing: the sweep ends as a finished one, with nothing to resume.
            if not all(run_status(d)[0] in contract.FINISHED for d in run_dirs):
                raise
            late_stop = True
        finally:
            monitor.stop()
            # A run still `running` that no job holds was killed from outside (SIGKILL, a
            # lost node) before it could say so.
            mark_interrupted(run_dirs, unless_locked=True)
            rows = refresh_index(sweep_dir)
            tracking.close_sweep(sweep_dir, [str(r.get("status")) for r in rows])
    if refused is not None:
        raise _refused(refused, sweep_dir, created and not resume, rows)
    if late_stop:
        console.print(
            f"Stopped after every run had finished ({len(rows)} of {len(rows)}): "
            "nothing was interrupted, nothing is left to resume.",
            highlight=False,
            markup=False,
        )
    return rows


def _refused(
    err: bridge_launch.SubmissionRefused, sweep_dir: Path, ours: bool, rows: list[dict[str, Any]]
) -> UserError:
    """The scheduler took none of the jobs. A sweep this command created, with no run started,
    is removed: the same command runs again once the settings are fixed. Otherwise (a resume,
    or runs that did start) it stays, to resume."""
    untouched = all(r.get("status") == contract.PENDING for r in rows)
    if ours and untouched:
        shutil.rmtree(sweep_dir, ignore_errors=True)
        return UserError(f"{err}; nothing was written")
    again = f"vaesweep sweep --resume {shlex.quote(str(sweep_dir))}"
    return UserError(f"{err}; then resume with {again} (add the fixed hydra.launcher.* settings)")


def _launch(
    plan: SweepPlan,
    sweep_dir: Path,
    opts: LaunchOptions,
    extra: list[str],
    keep: Callable[[list[str]], bool] | None,
) -> None:
    user = list(plan.overrides)
    if plan.stacks():
        from vaesweep.bridge.stack_task import stack_task

        stacked, subdir = stack_launch(plan, user)
        bridge_launch.launch(
            [*stacked, *extra],
            sweep_dir=sweep_dir.resolve(),
            subdir=subdir,
            extra_dirs=opts.config_dirs,
            task=stack_task,
            keep=keep,
        )
    else:
        bridge_launch.launch(
            [*user, *extra],
            sweep_dir=sweep_dir.resolve(),
            subdir=bridge_launch.run_subdir(plan.swept_keys),
            extra_dirs=opts.config_dirs,
            keep=keep,
        )


def _unfinished(plan: SweepPlan, sweep_dir: Path) -> tuple[Callable[[list[str]], bool], int]:
    """Which launched jobs a resumed sweep keeps (a job's override list in, whether it has a
    run left to train out), and how many those are: runs, or stacks with a member left."""
    done = {r.name for r in plan.runs if run_status(sweep_dir / r.name)[0] == contract.COMPLETED}
    if plan.stacks():
        from vaesweep.bridge.stack_task import stack_runs

        stacks = plan.stacks()

        def keep(job: list[str]) -> bool:
            return any(r.name not in done for r in stack_runs(plan, job))

        return keep, sum(any(r.name not in done for r in stack) for stack in stacks)

    def keep_run(job: list[str]) -> bool:
        return run_name(job, plan.swept_keys) not in done

    return keep_run, sum(r.name not in done for r in plan.runs)


def _trackers(plan: SweepPlan, opts: LaunchOptions) -> list[TrackerConfig]:
    """The tracker settings of the sweep's runs: the first run's, or each run's when the
    ``tracker`` group itself is swept."""
    swept = any(k.lstrip("+~").split(".")[0] == "tracker" for k in plan.swept_keys)
    assert opts.trackers is not None, "plan_sweep composes every run's tracker settings"
    return opts.trackers if swept else opts.trackers[:1]
