"""``vaesweep sweep``: plan the grid, take the lock, launch, watch, and keep the index current.

Planning composes and range-checks every run (:func:`vaesweep.bridge.grid.validate_jobs`)
before anything is written; the plan goes to ``sweep.json``, the index ``runs.csv`` is rebuilt
before the launch, after every finished run (:func:`vaesweep.bridge.launch.hydra_task`) and
when the launch ends, and :class:`~vaesweep.commands.sweep_monitor.SweepMonitor` prints
progress while it runs.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from vaesweep.bridge import grid as bridge_grid
from vaesweep.bridge import launch as bridge_launch
from vaesweep.commands.launching import LaunchOptions, launcher_overrides
from vaesweep.commands.sweep_monitor import SweepMonitor
from vaesweep.commands.sweep_stacks import (
    DEFAULT_STACK_SIZE,
    assign_stacks,
    launch_units,
    stack_launch,
)
from vaesweep.commands.train import timestamp
from vaesweep.errors import UserError
from vaesweep.record.layout import sweeps_dir
from vaesweep.record.sweep_index import refresh_index
from vaesweep.record.sweep_lock import SweepLock
from vaesweep.record.sweep_plan import PLAN_FILE, PlannedRun, SweepPlan


def plan_sweep(
    overrides: list[str], opts: LaunchOptions, name: str | None
) -> tuple[SweepPlan, bridge_grid.Grid]:
    """Expand and validate the grid (nothing is written)."""
    grid = bridge_grid.expand_grid(overrides, opts.config_dirs)
    bridge_grid.validate_jobs(grid, opts.config_dirs)
    names = grid.names()
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UserError(f"several runs would share the directory {sorted(dupes)[0]}")
    runs = [PlannedRun(n, v, j) for n, v, j in zip(names, grid.rows(), grid.jobs)]
    plan = SweepPlan(
        name=name or timestamp(),
        overrides=list(overrides),
        swept_keys=grid.swept_keys,
        runs=runs,
        launcher=opts.launcher,
        jobs=opts.jobs,
        config_dirs=[str(Path(d).expanduser().resolve()) for d in opts.config_dirs],
        command="vaesweep sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
    )
    size = DEFAULT_STACK_SIZE if opts.stack_size is None else opts.stack_size
    if size < 0:
        raise UserError(f"--stack-size {size} is invalid: must be >= 1 (or --no-stack)")
    assign_stacks(plan, size)
    return plan, grid


def plan_new_or_resumed(
    overrides: list[str], opts: LaunchOptions, name: str | None, resume: Path | None
) -> tuple[SweepPlan, Path]:
    """The plan and directory of a new sweep, or of the interrupted sweep in ``resume``.

    A resumed sweep re-plans its stored overrides (with its stored ``--config-dir`` folders
    unless new ones are given) and keeps its creation time, resume times and command.
    """
    if resume is None:
        plan, _ = plan_sweep(overrides, opts, name)
        return plan, sweeps_dir(opts.outputs) / plan.name
    if overrides:
        raise UserError(
            "--resume takes the overrides stored in the sweep; drop "
            f"{' '.join(overrides)} (or start a new sweep)"
        )
    sweep_dir = resume.expanduser()
    if not sweep_dir.is_dir():
        raise UserError(f"--resume {resume}: no such directory")
    stored = load_for_resume(sweep_dir)
    opts.config_dirs = opts.config_dirs or [Path(d) for d in stored.config_dirs]
    if opts.stack_size is None:  # the runs keep the stacks their checkpoints came from
        opts.stack_size = stored.stack_size
    plan, _ = plan_sweep(stored.overrides, opts, stored.name)
    plan.created, plan.resumed, plan.command = stored.created, stored.resumed, stored.command
    return plan, sweep_dir


def sweep(
    plan: SweepPlan, sweep_dir: Path, opts: LaunchOptions, console: Console, resume: bool
) -> list[dict[str, Any]]:
    """Run (or resume) ``plan`` into ``sweep_dir``; returns the index rows."""
    user = list(plan.overrides)
    # Checked before the lock creates the directory: a typo leaves nothing behind.
    extra, launcher, threads = launcher_overrides(opts, launch_units(plan), user)
    if not resume and (sweep_dir / PLAN_FILE).exists():
        raise UserError(
            f"{sweep_dir} already holds a sweep; resume it with "
            f"`vaesweep sweep --resume {sweep_dir}` or choose another --name"
        )
    with SweepLock(sweep_dir):
        if resume:
            plan.resumed.append(datetime.now().isoformat(timespec="seconds"))
        elif (sweep_dir / PLAN_FILE).exists():
            raise UserError(
                f"{sweep_dir} was claimed by another sweep just now; use another --name"
            )
        plan.launcher, plan.jobs, plan.threads_per_run = launcher, opts.jobs, threads
        plan.save(sweep_dir)
        refresh_index(sweep_dir)
        bars_off = "train.progress=off" in [*user, *extra]
        monitor = SweepMonitor(sweep_dir, plan, console, live=bars_off).start()
        try:
            if plan.stacks():
                from vaesweep.bridge.stack_task import stack_task

                stacked, subdir = stack_launch(plan, user)
                bridge_launch.launch(
                    [*stacked, *extra],
                    sweep_dir=sweep_dir.resolve(),
                    subdir=subdir,
                    extra_dirs=opts.config_dirs,
                    task=stack_task,
                )
            else:
                bridge_launch.launch(
                    [*user, *extra],
                    sweep_dir=sweep_dir.resolve(),
                    subdir=bridge_launch.run_subdir(plan.swept_keys),
                    extra_dirs=opts.config_dirs,
                )
        finally:
            monitor.stop()
            rows = refresh_index(sweep_dir)
    return rows


def load_for_resume(sweep_dir: Path) -> SweepPlan:
    plan = SweepPlan.load(sweep_dir)
    if not plan.runs:
        raise UserError(f"{sweep_dir}/{PLAN_FILE} lists no runs")
    return plan
