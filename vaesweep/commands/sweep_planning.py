"""Planning a sweep: expand and validate the grid, check data, devices, launcher and name,
and re-plan an interrupted sweep from what it stored; nothing here writes.

A resumed sweep re-plans its stored overrides with its stored launcher, ``--jobs`` and stacks
unless new ones are given (:func:`plan_new_or_resumed`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaesweep.bridge import grid as bridge_grid
from vaesweep.commands.launching import (
    LAUNCHER_ALIASES,
    LaunchOptions,
    launcher_name,
    launcher_overrides,
    parallel_jobs,
    runs_here,
    trains_remotely,
)
from vaesweep.commands.sweep_stacks import assign_stacks, default_stack_size, launch_units
from vaesweep.commands.train import timestamp
from vaesweep.config.stacking import GPU_STACK_SIZE
from vaesweep.cpus import usable_cpus
from vaesweep.errors import UserError, folder_problem
from vaesweep.record import contract
from vaesweep.record.layout import one_component, sweeps_dir, writable_dir, writable_root
from vaesweep.record.run_record import RunRecord
from vaesweep.record.sweep_index import run_status
from vaesweep.record.sweep_plan import PLAN_FILE, PlannedRun, SweepPlan
from vaesweep.tracking import session as tracking


def plan_sweep(
    overrides: list[str], opts: LaunchOptions, name: str | None, resume: Path | None = None
) -> tuple[SweepPlan, bridge_grid.Grid]:
    """Expand and validate the grid (nothing is written); for a sweep resumed from ``resume``,
    also the runs it will continue (their checkpoints and metrics)."""
    if name is not None:
        one_component(name, parent=sweeps_dir(opts.outputs))
    grid = bridge_grid.expand_grid(overrides, opts.config_dirs)
    configs = bridge_grid.validate_jobs(grid, opts.config_dirs)
    opts.trackers = [c.tracker for c in configs]
    tracking.check(opts.trackers)  # a missing tracker package: before anything
    names = grid.names()
    resumed = [resume / n for n in names] if resume is not None else []
    opts.notes, gpu_capacity = _preflight(
        configs,
        runs_here(opts),
        resumed,
        trains_remotely(opts),
    )
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
    size = opts.stack_size
    if size is None:
        size = default_stack_size(gpu_capacity, parallel_jobs(opts.jobs, len(runs)))
        if gpu_capacity is not None and size < min(GPU_STACK_SIZE, len(runs)):
            opts.notes.append(
                f"stacks of at most {size}: the GPU's memory holds about {gpu_capacity} "
                f"members of this model (--stack-size N to choose)"
            )
    if size < 0:
        raise UserError(f"--stack-size {size} is invalid: must be >= 1 (or --no-stack)")
    assign_stacks(plan, size)
    alone = _trains_alone(configs) if plan.stacks() else ""
    if alone:
        opts.notes.append(f"runs train one per process, not stacked: {alone}")
        assign_stacks(plan, 0)
    return plan, grid


#: Architectures :mod:`vaesweep.model.stacked` can stack (linear, conv and SiLU layers only).
STACKABLE_ARCHS = ("conv", "mlp")


def _trains_alone(configs: list[Any]) -> str:
    """Why these runs cannot share a stack (empty when they can): an architecture or a
    precision without a stacked form."""
    if any(c.train.precision == "fp16" for c in configs):
        # fp16's loss scale is per run: a stack's one scale would skip every member's step
        # whenever one member's gradients overflow.
        return "train.precision=fp16 scales each run's loss on its own (bf16 stacks)"
    archs = sorted({c.model.arch for c in configs} - set(STACKABLE_ARCHS))
    if archs:
        return f"model={archs[0]} has no stacked form (stacked: {', '.join(STACKABLE_ARCHS)})"
    return ""


def _preflight(
    configs: list[Any], here: bool, resumed: list[Path], remote: bool = False
) -> tuple[list[str], int | None]:
    """Device and data of every distinct setting, and the runs ``resumed`` continues (see
    :func:`check_data_and_devices`), checked before anything is written; returns the notes
    the user must see (data found elsewhere than data.root) and the most stack members the
    runs' GPU holds (None off a GPU).

    ``here``: in this process, which trains the runs anyway; otherwise in a short-lived child
    process, so a driver that only waits for its workers or a cluster's jobs (for days, on a
    login node) never holds torch and the data.
    """
    if here:
        return check_data_and_devices(configs, resumed, remote)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(check_data_and_devices, configs, resumed, remote).result()


def check_data_and_devices(
    configs: list[Any], resumed: Sequence[Path] = (), remote: bool = False
) -> tuple[list[str], int | None]:
    """:func:`vaesweep.run.assembly.preflight` of each distinct (data, device), and
    :func:`~vaesweep.run.assembly.check_model` of every run's model on its data; the notes,
    and the fewest members of a stack that any run's GPU holds
    (:func:`~vaesweep.run.stack_capacity.gpu_stack_capacity`; None where no run trains on a
    GPU). ``remote``: the runs train on a cluster's nodes (see
    :func:`~vaesweep.run.assembly.preflight`).

    Each run in ``resumed`` that is not completed must be continuable
    (:meth:`~vaesweep.record.run_record.RunRecord.check_resumable`: its checkpoint loads, its
    metrics reach the checkpoint's epoch), or the whole resume stops with one line.
    """
    from vaesweep.run.assembly import check_model, fallback_notes, preflight  # torch: if used
    from vaesweep.run.stack_capacity import gpu_stack_capacity

    for run_dir in resumed:
        if run_status(run_dir)[0] != contract.COMPLETED:
            RunRecord(run_dir).check_resumable()

    shapes: dict[str, tuple[int, int, int]] = {}
    data_bytes: dict[str, int] = {}
    notes: list[str] = []
    capacities: dict[str, int | None] = {}
    for config in configs:
        key = repr((config.data, None if remote else config.train.device))
        setting = repr((key, config.model, config.loss, config.train.batch_size))
        if setting in capacities:
            continue  # checked: the runs differ in numbers no check reads (beta, seed, kl.*)
        if key in shapes:  # the same data: only the model may not fit it (model.depth=2,5)
            check_model(config, shapes[key], remote=remote)
        else:
            splits = preflight(config, remote=remote)
            shapes[key] = splits.shape
            data_bytes[key] = splits.train.images.numel() + splits.val.images.numel()
            notes += [n for n in fallback_notes(splits) if n not in notes]
        capacities[setting] = (
            None if remote else gpu_stack_capacity(config, shapes[key], data_bytes[key])
        )
    known = [c for c in capacities.values() if c is not None]
    return notes, min(known) if known else None


def plan_new_or_resumed(
    overrides: list[str], opts: LaunchOptions, name: str | None, resume: Path | None
) -> tuple[SweepPlan, Path]:
    """The plan and directory of a new sweep, or of the interrupted sweep in ``resume``.

    A resumed sweep re-plans its stored overrides (with its stored ``--config-dir`` folders
    unless new ones are given) and keeps its creation time, resume times and command.
    """
    if resume is None:
        plan, _ = plan_sweep(overrides, opts, name)
        sweep_dir = sweeps_dir(writable_root(opts.outputs)) / plan.name
        # Checked before the grid is printed: a wrong launcher or a taken name is the answer.
        check_cores(opts, plan)
        check_new(sweep_dir)
        return plan, sweep_dir
    if overrides:
        raise UserError(
            "--resume takes the overrides stored in the sweep; drop "
            f"{' '.join(overrides)} (or start a new sweep)"
        )
    sweep_dir = resume.expanduser()
    problem = folder_problem(sweep_dir)
    if problem == "does not exist":
        raise UserError(f"--resume {resume}: no such directory")
    if problem:
        raise UserError(f"--resume {resume} {problem}; pass the folder of an interrupted sweep")
    writable_dir(sweep_dir, "--resume")
    stored = load_for_resume(sweep_dir)
    opts.config_dirs = opts.config_dirs or [Path(d) for d in stored.config_dirs]
    # The sweep's own launcher and --jobs unless the user gives new ones (a SLURM sweep
    # resumed from the login node must go back to SLURM, not train there).
    if not opts.launcher_given and stored.launcher:
        opts.launcher = stored.launcher
    if not opts.jobs_given and stored.jobs:
        opts.jobs = stored.jobs
    used = launcher_name(opts)
    why = "given" if opts.launcher_given else "stored in the sweep"
    if used != LAUNCHER_ALIASES.get(opts.launcher, opts.launcher):
        why = f"for --jobs {opts.jobs}; {opts.launcher} was {why}"
    opts.resume_note = (
        f"resuming with --launcher {used} ({why}) and --jobs {opts.jobs} "
        f"({'given' if opts.jobs_given else 'stored in the sweep'})"
    )
    if opts.stack_size is None:  # the runs keep the stacks their checkpoints came from
        opts.stack_size = stored.stack_size
    plan, _ = plan_sweep(stored.overrides, opts, stored.name, resume=sweep_dir)
    plan.created, plan.resumed, plan.command = stored.created, stored.resumed, stored.command
    check_cores(opts, plan)
    return plan, sweep_dir


def check_cores(opts: LaunchOptions, plan: SweepPlan) -> None:
    """The launcher exists and --jobs is sane, before the run table is printed; a note when
    more runs would train at once than there are cores."""
    _, launcher, _ = launcher_overrides(opts, launch_units(plan), plan.overrides)
    workers = parallel_jobs(opts.jobs, launch_units(plan)) if launcher == "joblib" else 1
    if workers > usable_cpus():
        opts.notes.append(
            f"--jobs {opts.jobs} trains {workers} runs at once on {usable_cpus()} cores; they share "
            "the cores and each goes slower"
        )


def check_new(sweep_dir: Path) -> None:
    if (sweep_dir / PLAN_FILE).exists():
        raise UserError(
            f"{sweep_dir} already holds a sweep; resume it with "
            f"`vaesweep sweep --resume {shlex.quote(str(sweep_dir))}` or choose another --name"
        )


def load_for_resume(sweep_dir: Path) -> SweepPlan:
    plan = SweepPlan.load(sweep_dir)
    if not plan.runs:
        raise UserError(f"{sweep_dir}/{PLAN_FILE} lists no runs")
    return plan
