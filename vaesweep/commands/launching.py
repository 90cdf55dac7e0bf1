"""Which launcher runs the jobs, and the Hydra overrides that select it.

Launchers are Hydra plugins selected by overrides, so every sweep is reproducible from its
``multirun.yaml``: ``basic`` (sequential, in this process), ``joblib`` (``--jobs N``: N local
processes, each with cores/N torch threads), ``submitit_local`` (submitit's local executor,
the SLURM code path on one machine) and ``slurm`` (conf/hydra/launcher/slurm.yaml, or any
``hydra/launcher/<site>.yaml`` in a ``--config-dir``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vaesweep.bridge import launch as bridge_launch
from vaesweep.bridge.overrides import has_key
from vaesweep.config.tracker import TrackerConfig
from vaesweep.cpus import usable_cpus
from vaesweep.errors import UserError

LAUNCHER_ALIASES = {"local": "basic", "jobs": "joblib"}
PLUGIN_HINT = {
    "joblib": "pip install 'vaesweep[joblib]' (hydra-joblib-launcher)",
    "submitit_local": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
    "submitit_slurm": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
    "slurm": "pip install 'vaesweep[slurm]' (hydra-submitit-launcher)",
}
#: Commands submitit's SLURM executor calls (submit, run, poll).
SLURM_COMMANDS = ("sbatch", "srun", "sacct")
#: Launchers that run on this machine (no profile to look into).
LOCAL_LAUNCHERS = ("basic", "joblib", "submitit_local")
#: Launchers whose jobs are this process or its children: they end when the command ends.
CHILD_LAUNCHERS = ("basic", "joblib")


@dataclass
class LaunchOptions:
    launcher: str = "basic"
    jobs: int = 1
    config_dirs: list[Path] = field(default_factory=list)
    outputs: Path | None = None
    #: Whether the user typed --launcher / --jobs (a resumed sweep keeps its own otherwise).
    launcher_given: bool = True
    jobs_given: bool = True
    #: What a resumed sweep runs with, and why (printed before it starts).
    resume_note: str = ""
    #: Notes about the data found by the checks before launching (printed before it starts).
    notes: list[str] = field(default_factory=list)
    #: The tracker settings of every planned run (set by planning, which composed them).
    trackers: list[TrackerConfig] | None = None

    #: Most runs per stack (``--stack-size``); 0 = no stacking (``--no-stack``); None = the
    #: default for a new sweep, the stored size for a resumed one.
    stack_size: int | None = None


#: The largest --jobs accepted: beyond it a number is a typo, not a plan.
MAX_JOBS = 256


def parallel_jobs(jobs: int, n_jobs: int) -> int:
    """Worker processes for ``--jobs`` over ``n_jobs`` launched jobs: never more than jobs."""
    return max(1, min(jobs, n_jobs))


def launcher_overrides(
    opts: LaunchOptions, n_runs: int, user: list[str]
) -> tuple[list[str], str, int | None]:
    """Hydra overrides selecting the launcher; (overrides, launcher name, threads per run)."""
    name = launcher_name(opts)
    if opts.jobs < 1:
        raise UserError(f"--jobs {opts.jobs} is invalid: must be >= 1")
    if opts.jobs > MAX_JOBS:
        raise UserError(
            f"--jobs {opts.jobs} is more than any machine runs at once; use at most the "
            f"number of cores here ({usable_cpus()}), or --launcher slurm for a cluster"
        )
    available = bridge_launch.launcher_names(opts.config_dirs)
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
        # More workers than jobs would only sit idle (and each costs a process).
        workers = parallel_jobs(opts.jobs, n_runs)
        out.append(f"hydra.launcher.n_jobs={workers}")
        threads = max(1, usable_cpus() // workers)
    elif name == "submitit_local":
        # submitit's local executor starts every run at once: share the cores between them.
        threads = max(1, usable_cpus() // max(1, n_runs))
    # Neither key names a run (record.run_names.UNNAMED_KEYS): a run's directory is the same
    # whichever launcher trains it. Under SLURM a job takes its threads from the CPUs it got.
    if threads is not None and not has_key(user, "train.threads"):
        out.append(f"train.threads={threads}")
    # Parallel or many runs: one line per finished run instead of interleaved bars.
    if (name != "basic" or n_runs > 1) and not has_key(user, "train.progress"):
        out.append("train.progress=off")
    return out, name, threads


def launcher_name(opts: LaunchOptions) -> str:
    """The launcher that runs the jobs: ``--launcher`` (aliases resolved), except that the
    sequential ``basic`` cannot run ``--jobs N`` > 1 at once, which is what ``joblib`` does."""
    name = LAUNCHER_ALIASES.get(opts.launcher, opts.launcher)
    return "joblib" if name == "basic" and opts.jobs > 1 else name


def trains_remotely(opts: LaunchOptions) -> bool:
    """Whether the runs train on other machines (a cluster's nodes), whose devices and memory
    this one cannot see: the checks made here before anything is written
    (``run.assembly.preflight``) then cover the data and the model's shape, not the device."""
    return launcher_name(opts) not in LOCAL_LAUNCHERS


def runs_here(opts: LaunchOptions) -> bool:
    """Whether the runs train in this process (the basic launcher, one job at a time)."""
    return launcher_name(opts) == "basic"


def jobs_outlive_driver(opts: LaunchOptions) -> bool:
    """Whether the launched jobs may go on after this command stops (submitit's processes,
    a cluster's jobs): then only runs no job holds are marked ``interrupted``."""
    return launcher_name(opts) not in CHILD_LAUNCHERS


def _check_cluster_commands(launcher: str, name: str, config_dirs: list[Path]) -> None:
    """A SLURM launcher needs SLURM's commands here; say so before anything is written."""
    if name in LOCAL_LAUNCHERS:
        return
    if not bridge_launch.launcher_target(name, config_dirs).endswith("SlurmLauncher"):
        return
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        raise UserError(
            f"--launcher {launcher} submits to SLURM, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here; run vaesweep on the "
            "cluster's login node, or try the same code path on this machine with "
            "--launcher submitit_local"
        )
