"""Which launcher runs the jobs, and the Hydra overrides that select it.

Launchers are Hydra plugins selected by overrides, so every sweep is reproducible from its
``multirun.yaml``: ``basic`` (sequential, in this process), ``joblib`` (``--jobs N``: N local
processes, each with cores/N torch threads), ``submitit_local`` (submitit's local executor,
the SLURM code path on one machine) and ``slurm`` (conf/hydra/launcher/slurm.yaml, or any
``hydra/launcher/<site>.yaml`` in a ``--config-dir``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vaesweep.bridge import launch as bridge_launch
from vaesweep.bridge.overrides import has_key
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
    #: Most runs per stack (``--stack-size``); 0 = no stacking (``--no-stack``); None = the
    #: default for a new sweep, the stored size for a resumed one.
    stack_size: int | None = None


def launcher_overrides(
    opts: LaunchOptions, n_runs: int, user: list[str]
) -> tuple[list[str], str, int | None]:
    """Hydra overrides selecting the launcher; (overrides, launcher name, threads per run)."""
    name = LAUNCHER_ALIASES.get(opts.launcher, opts.launcher)
    if opts.jobs < 1:
        raise UserError(f"--jobs {opts.jobs} is invalid: must be >= 1")
    if opts.jobs > 1 and name == "basic":
        name = "joblib"
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
        out.append(f"hydra.launcher.n_jobs={opts.jobs}")
        threads = max(1, cores() // min(opts.jobs, max(n_runs, 1)))
    elif name == "submitit_local":
        # submitit's local executor starts every run at once: share the cores between them.
        threads = max(1, cores() // max(1, n_runs))
    if threads is not None and not has_key(user, "train.threads"):
        out.append(f"train.threads={threads}")
    # Parallel or many runs: one line per finished run instead of interleaved bars.
    if (name != "basic" or n_runs > 1) and not has_key(user, "train.progress"):
        out.append("train.progress=off")
    return out, name, threads


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
