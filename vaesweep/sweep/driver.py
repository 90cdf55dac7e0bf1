"""Driving ``vaesweep train`` and ``vaesweep sweep``: directories, launcher choice, resume, lock.

Launchers are Hydra plugins selected by overrides, so every sweep is reproducible from its
``multirun.yaml``: ``basic`` (sequential, in this process), ``joblib`` (``--jobs N``: N local
processes, each with cores/N torch threads), ``submitit_local`` (submitit's local executor,
the SLURM code path on one machine) and ``slurm`` (conf/hydra/launcher/slurm.yaml, or any
``hydra/launcher/<site>.yaml`` in a ``--config-dir``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from vaesweep import hydra_bridge as bridge
from vaesweep.errors import UserError
from vaesweep.outputs import outputs_root
from vaesweep.sweep.index import refresh_index
from vaesweep.sweep.lock import SweepLock
from vaesweep.sweep.monitor import SweepMonitor
from vaesweep.sweep.plan import PLAN_FILE, PlannedRun, SweepPlan
from vaesweep.tracking import session as tracking

LAUNCHER_ALIASES = {"local": "basic", "jobs": "joblib"}
PLUGIN_HINT = {
    "joblib": "pip install 'vaesweep[joblib]' (hydra-joblib-launcher)",
    "submitit_local": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
    "submitit_slurm": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
    "slurm": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


@dataclass
class LaunchOptions:
    launcher: str = "basic"
    jobs: int = 1
    config_dirs: list[Path] = field(default_factory=list)
    outputs: Path | None = None


def _has_key(overrides: list[str], key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


def launcher_overrides(
    opts: LaunchOptions, n_runs: int, user: list[str]
) -> tuple[list[str], str, int | None]:
    """Hydra overrides selecting the launcher; (overrides, launcher name, threads per run)."""
    name = LAUNCHER_ALIASES.get(opts.launcher, opts.launcher)
    if opts.jobs < 1:
        raise UserError(f"--jobs {opts.jobs} is invalid: must be >= 1")
    if opts.jobs > 1 and name == "basic":
        name = "joblib"
    available = bridge.launcher_names(opts.config_dirs)
    if name not in available:
        hint = PLUGIN_HINT.get(name)
        choices = ", ".join(n for n in available)
        raise UserError(
            f"launcher '{opts.launcher}' is not available"
            + (f"; install it with {hint}" if hint else "")
            + f" (available: {choices})"
        )
    _check_cluster_commands(opts.launcher, name, opts.config_dirs)
    out = [] if name == "basic" else [f"hydra/launcher={name}"]
    threads: int | None = None
    if name == "joblib":
        out.append(f"hydra.launcher.n_jobs={opts.jobs}")
        threads = max(1, cores() // min(opts.jobs, max(n_runs, 1)))
    elif name == "submitit_local":
        # submitit's local executor starts every run at once: share the cores between them.
        threads = max(1, cores() // max(1, n_runs))
    if threads is not None and not _has_key(user, "train.threads"):
        out.append(f"train.threads={threads}")
    # Parallel or many runs: one line per finished run instead of interleaved bars.
    if (name != "basic" or n_runs > 1) and not _has_key(user, "train.progress"):
        out.append("train.progress=off")
    return out, name, threads


#: Commands submitit's SLURM executor calls (submit, run, poll).
SLURM_COMMANDS = ("sbatch", "srun", "sacct")
#: Launchers that run on this machine (no profile to look into).
LOCAL_LAUNCHERS = ("basic", "joblib", "submitit_local")


def _check_cluster_commands(launcher: str, name: str, config_dirs: list[Path]) -> None:
    """A SLURM launcher needs SLURM's commands here; say so before anything is written."""
    if name in LOCAL_LAUNCHERS:
        return
    if not bridge.launcher_target(name, config_dirs).endswith("SlurmLauncher"):
        return
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        raise UserError(
            f"--launcher {launcher} submits to SLURM, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here; run vaesweep on the "
            "cluster's login node, or try the same code path on this machine with "
            "--launcher submitit_local"
        )


def _timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _slug(text: str) -> str:
    return re.sub(r"[^\w.=,+-]+", "_", text).strip("_")[:80]


# ------------------------------------------------------------------------------ train


def train(
    overrides: list[str],
    opts: LaunchOptions,
    name: str | None,
    console: Console,
    resume: Path | None = None,
) -> dict:
    """One run under ``outputs/runs/<time>[_<name>]``, or continue the run in ``resume``."""
    if resume is not None:
        overrides, run_dir = _resumable_run(resume, overrides)
        config = bridge.compose(overrides, opts.config_dirs)
        tracking.preflight([config.tracker], outputs_root(opts.outputs))
    else:
        config = bridge.compose(overrides, opts.config_dirs)  # validate before creating anything
        tracking.preflight([config.tracker], outputs_root(opts.outputs))
        label = name or _slug(",".join(o for o in overrides if not o.startswith("hydra")))
        run_dir = (
            outputs_root(opts.outputs) / "runs" / (_timestamp() + (f"_{label}" if label else ""))
        )
        if run_dir.exists():
            run_dir = run_dir.with_name(run_dir.name + f"_{os.getpid()}")
    extra, _launcher, _ = launcher_overrides(opts, 1, overrides)
    console.print(f"run dir: {run_dir}", highlight=False)
    results = bridge.launch(
        [*overrides, *extra],
        sweep_dir=run_dir.resolve(),
        subdir=".",
        extra_dirs=opts.config_dirs,
    )
    summary: dict[str, Any] = results[0].return_value if results else {}
    summary["run_dir"] = str(run_dir)
    return summary


def _resumable_run(run_dir: Path, overrides: list[str]) -> tuple[list[str], Path]:
    """The stored overrides of an interrupted single run (its summary.json)."""
    from vaesweep.sweep.index import run_status

    if overrides:
        raise UserError("--resume takes the run's own overrides; drop " + " ".join(overrides))
    status, summary = run_status(run_dir)
    if summary is None:
        raise UserError(f"--resume {run_dir}: not a run directory (no readable summary.json)")
    if status == "completed":
        raise UserError(f"{run_dir} already completed; nothing to resume")
    stored = [o for o in summary.get("overrides") or [] if not o.startswith("train.progress")]
    return stored, run_dir


# ------------------------------------------------------------------------------ sweep


def plan_sweep(
    overrides: list[str], opts: LaunchOptions, name: str | None
) -> tuple[SweepPlan, list[Any]]:
    """Expand and validate the grid (nothing is written); the plan and each run's config."""
    grid = bridge.expand_grid(overrides, opts.config_dirs)
    configs = bridge.validate_jobs(grid, opts.config_dirs)
    tracking.check([c.tracker for c in configs])
    names = grid.names()
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UserError(f"several runs would share the directory {sorted(dupes)[0]}")
    runs = [PlannedRun(n, v, j) for n, v, j in zip(names, grid.rows(), grid.jobs)]
    plan = SweepPlan(
        name=name or _timestamp(),
        overrides=list(overrides),
        swept_keys=grid.swept_keys,
        runs=runs,
        launcher=opts.launcher,
        jobs=opts.jobs,
        config_dirs=[str(Path(d).expanduser().resolve()) for d in opts.config_dirs],
        command="vaesweep sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
    )
    return plan, configs


def sweep(
    plan: SweepPlan,
    sweep_dir: Path,
    opts: LaunchOptions,
    console: Console,
    resume: bool,
    trackers: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) ``plan`` into ``sweep_dir``; returns the index rows."""
    user = list(plan.overrides)
    # Checked before the lock creates the directory: a typo leaves nothing behind.
    extra, launcher, threads = launcher_overrides(opts, len(plan.runs), user)
    if not resume and (sweep_dir / PLAN_FILE).exists():
        raise UserError(
            f"{sweep_dir} already holds a sweep; resume it with "
            f"`vaesweep sweep --resume {sweep_dir}` or choose another --name"
        )
    tracking.preflight(trackers or [], outputs_root(opts.outputs))
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
        tracking.open_sweep(
            trackers or [], sweep_dir, plan.name, plan.swept_keys, outputs_root(opts.outputs)
        )
        bars_off = "train.progress=off" in [*user, *extra]
        monitor = SweepMonitor(sweep_dir, plan, console, live=bars_off).start()
        try:
            bridge.launch(
                [*user, *extra],
                sweep_dir=sweep_dir.resolve(),
                subdir=bridge.run_subdir(plan.swept_keys),
                extra_dirs=opts.config_dirs,
            )
        finally:
            monitor.stop()
            rows = refresh_index(sweep_dir)
            tracking.close_sweep(sweep_dir, [str(r.get("status")) for r in rows])
    return rows


def load_for_resume(sweep_dir: Path) -> SweepPlan:
    plan = SweepPlan.load(sweep_dir)
    if not plan.runs:
        raise UserError(f"{sweep_dir}/{PLAN_FILE} lists no runs")
    return plan
