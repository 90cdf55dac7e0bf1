"""Launching with Hydra: a real multirun (sweeper + launcher plugin) and its task function.

``train`` is a multirun of one, so every launcher works for single runs too. Launching goes
through ``GlobalHydra.instance().hydra.multirun``, the call ``@hydra.main --multirun`` makes;
its signature is unchanged from Hydra 1.1 to 1.4-dev (tests/test_bridge_hooks.py pins it).

A single run is composed once before it is launched: :func:`prepare_job` composes and
validates it (nothing is written yet) and :func:`launch_job` hands that composition to the
multirun, whose launcher then composes the job where it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vaesweep.bridge.compose import (
    CONFIG_NAME,
    compose_launch,
    hydra_session,
    searchpath_override,
    to_config,
)
from vaesweep.bridge.hydra_internals import (
    multirun_uses_composition,
    release_joblib_workers,
    scheduler_errors_unprinted,
    submitit_waits_for_every_job,
    sweeper_launches_only,
    sweeper_trusts_validation,
    trackers_ignore_hangup,
)
from vaesweep.bridge.job_signals import stop_signals_as_interrupt
from vaesweep.bridge.overrides import quote
from vaesweep.config import Config
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.record.sweep_index import mark_interrupted, refresh_index, run_status
from vaesweep.record.sweep_lock import SweepLock
from vaesweep.record.sweep_plan import PLAN_FILE, SweepPlan

log = logging.getLogger(__name__)

#: The override that launches the jobs in joblib's worker processes (``--jobs N``).
JOBLIB_LAUNCHER = "hydra/launcher=joblib"
#: What SLURM tells a job about the CPUs it was given (``--cpus-per-task``).
SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"


class SubmissionRefused(UserError):
    """The scheduler refused the launch's jobs (``sbatch: error: ...``): none was submitted."""


#: What to change when the scheduler refuses a job, by a word of its error.
_REFUSAL_HINTS = (
    ("gres", "on a partition without GPUs set hydra.launcher.gpus_per_node=null"),
    ("partition", "name one that `sinfo` lists with hydra.launcher.partition=NAME"),
    ("account", "set hydra.launcher.account=NAME (see `sacctmgr show assoc user=$USER`)"),
)
_REFUSAL_HINT = (
    "ask for what the cluster offers (`sinfo`): hydra.launcher.partition, .cpus_per_task, "
    ".mem_gb, .timeout_min, .gpus_per_node"
)


def _refusal(err: BaseException) -> SubmissionRefused | None:
    """submitit's error for a failed ``sbatch``, as one line that says what to change."""
    if type(err).__name__ != "FailedJobError" or not type(err).__module__.startswith("submitit"):
        return None
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    said = "; ".join(ln.removeprefix("sbatch: error:").strip() for ln in lines) or "no reason"
    hint = next((h for word, h in _REFUSAL_HINTS if word in said.lower()), _REFUSAL_HINT)
    return SubmissionRefused(f"the scheduler refused the jobs ({said}); {hint}")


class JobsEnded(Exception):
    """Jobs of a launch ended without a result (cancelled, failed, killed by the scheduler);
    raised once every job of the launch has ended. ``lines``: one per such job."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def scheduler_threads(config: Config) -> Config:
    """A run inside a SLURM job uses the CPUs the job was given (``SLURM_CPUS_PER_TASK``)
    as torch threads, unless ``train.threads`` is set: torch would otherwise start one thread
    per core of the whole node and compete with the other jobs on it."""
    cpus = os.environ.get(SLURM_CPUS_ENV, "")
    if config.train.threads is None and cpus.isdigit() and int(cpus) > 0:
        config.train.threads = int(cpus)
    return config


@contextlib.contextmanager
def job_guard(sweep_dir: Path | None, run_dirs: Sequence[Path]) -> Any:
    """What every job of a sweep does around its training: it holds its runs' locks (the
    sweep's driver holds the sweep's), turns SIGTERM/SIGHUP into Ctrl-C (``scancel``,
    preemption) and marks the runs it leaves ``running`` as ``interrupted``, and rebuilds
    the sweep's ``runs.csv`` when it ends. ``sweep_dir`` None: a single run (its driver
    holds its lock)."""
    in_sweep = sweep_dir is not None and (sweep_dir / PLAN_FILE).exists()
    with contextlib.ExitStack() as locks:
        try:
            for run_dir in run_dirs:
                if in_sweep and run_dir.resolve() != sweep_dir:
                    locks.enter_context(SweepLock(run_dir, what="run"))
            with stop_signals_as_interrupt():
                yield
        except KeyboardInterrupt as stop:
            marked = mark_interrupted(list(run_dirs))
            why = f"stopped by {stop.args[0]}" if stop.args else "interrupted"
            for run_dir in marked:
                log.warning("%s: %s marked interrupted (resumable)", why, run_dir.name)
            raise
        finally:
            if in_sweep:
                assert sweep_dir is not None
                refresh_index(sweep_dir)


def run_subdir(swept_keys: Sequence[str]) -> str:
    """The ``hydra.sweep.subdir`` expression naming each run by its swept values."""
    keys = "+".join(k.lstrip("+~") for k in swept_keys) or "-"
    return "${vaesweep.run_name:" + keys + "}"


def hydra_task(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's task function: typed config and output dir in, the run's summary dict out.

    Module-level so launchers that pickle it (joblib, submitit) pickle it by reference. The
    config Hydra composed for this job is converted once (:func:`to_config`) and handed to
    :func:`vaesweep.run.job.run_job`. A run already completed returns its summary before torch
    is imported, so a worker with nothing left to train never pays for that. In a sweep the
    job locks its run and rebuilds the sweep's ``runs.csv`` when it ends (:func:`job_guard`;
    the run itself knows nothing about sweeps).
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    status, summary = run_status(run_dir)
    if status == contract.COMPLETED and summary is not None:
        return summary

    from vaesweep.run.job import run_job  # late: torch is imported inside the job only

    multirun = hydra_cfg.mode is not None and str(hydra_cfg.mode) == "RunMode.MULTIRUN"
    sweep_dir = Path(hydra_cfg.sweep.dir).resolve() if multirun else None
    config = scheduler_threads(to_config(cfg))
    tracking = _tracking_context(sweep_dir, run_dir) if config.tracker.names else None
    with job_guard(sweep_dir, [run_dir]):
        return run_job(config, run_dir, list(hydra_cfg.overrides.task), tracking)


def _tracking_context(sweep_dir: Path | None, run_dir: Path) -> Any:
    """What the run's trackers show of its sweep (swept values, their domains), from sweep.json."""
    if sweep_dir is None or not (sweep_dir / PLAN_FILE).exists():
        return None
    from vaesweep.tracking.info import sweep_context

    plan = SweepPlan.load(sweep_dir)
    runs = [(r.name, r.values) for r in plan.runs]
    return sweep_context(sweep_dir, plan.swept_keys, runs, run_dir.name)


def launch(
    overrides: Sequence[str],
    *,
    sweep_dir: Path,
    subdir: str,
    extra_dirs: Sequence[Path] = (),
    task: Callable[[DictConfig], Any] = hydra_task,
    keep: Callable[[list[str]], bool] | None = None,
) -> list[Any]:
    """Run a real Hydra multirun of ``overrides`` into ``sweep_dir/<subdir>``.

    ``subdir`` is a Hydra expression such as :func:`run_subdir`. Returns the flattened
    ``JobReturn`` list. The launcher is whatever ``hydra/launcher=...`` selects. ``keep``: the
    jobs (override lists) to launch, of those the overrides expand to (default: all). Jobs a
    submitit launcher reports without a result (``scancel``, a failed node) raise
    :class:`JobsEnded` once every job of the launch has ended.
    """
    return _multirun(
        [*overrides, *_launch_overrides(sweep_dir, subdir, extra_dirs)], extra_dirs, task, keep=keep
    )


@dataclass(frozen=True)
class PreparedJob:
    """One run's launch, composed and validated; nothing has been written for it yet."""

    overrides: list[str]
    extra_dirs: list[Path]
    #: Hydra's composition of the launch (its own settings included).
    composed: DictConfig
    #: The run's typed, range-checked config (the job's values: the launcher composes the job
    #: from the same overrides where it runs).
    config: Config


def prepare_job(
    overrides: Sequence[str], *, run_dir: Path, extra_dirs: Sequence[Path] = ()
) -> PreparedJob:
    """Compose and validate a single run launched into ``run_dir`` (one composition).

    Bad input raises :class:`~vaesweep.errors.UserError` here, before anything exists.
    """
    own = _launch_overrides(run_dir, ".", extra_dirs)
    composed, config = compose_launch(overrides, own, extra_dirs)
    return PreparedJob([*overrides, *own], list(extra_dirs), composed, config)


def check_launch(job: Sequence[str], sweep_dir: Path, extra_dirs: Sequence[Path] = ()) -> None:
    """Compose one job of a sweep as it will be launched (its launcher and ``hydra.*`` settings
    included) before anything is written: a typo there is one line, not a failure after the
    sweep's plan exists."""
    compose_launch(job, _launch_overrides(sweep_dir, ".", extra_dirs), extra_dirs)


def launch_job(job: PreparedJob, task: Callable[[DictConfig], Any] = hydra_task) -> list[Any]:
    """Launch a prepared run: Hydra's multirun starts from its composition (no second one)."""
    return _multirun(job.overrides, job.extra_dirs, task, job.composed)


def _launch_overrides(sweep_dir: Path, subdir: str, extra_dirs: Sequence[Path]) -> list[str]:
    return [
        f"hydra.sweep.dir={quote(str(sweep_dir))}",
        f"hydra.sweep.subdir={subdir}",
        "hydra.mode=MULTIRUN",
        *searchpath_override(extra_dirs),
    ]


def _multirun(
    overrides: list[str],
    extra_dirs: Sequence[Path],
    task: Callable[[DictConfig], Any],
    composed: DictConfig | None = None,
    keep: Callable[[list[str]], bool] | None = None,
) -> list[Any]:
    with (
        hydra_session(extra_dirs),
        sweeper_trusts_validation(),
        sweeper_launches_only(keep),
        submitit_waits_for_every_job() as ended,
        scheduler_errors_unprinted(),
    ):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        if JOBLIB_LAUNCHER in overrides:
            trackers_ignore_hangup()  # SIGHUP stops the jobs as SIGTERM does, and no more
        with contextlib.ExitStack() as stack:
            if composed is not None:
                stack.enter_context(multirun_uses_composition(hydra, composed))
            try:
                batches = hydra.multirun(
                    config_name=CONFIG_NAME,
                    task_function=task,
                    overrides=overrides,
                    with_log_configuration=True,
                )
            except Exception as err:
                if (refused := _refusal(err)) is not None:
                    raise refused from None
                raise
    release_joblib_workers()
    if ended:
        raise JobsEnded(ended)
    return [r for batch in batches for r in batch]


def launcher_names(extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Options of hydra/launcher visible to Hydra (plugins installed + conf/hydra/launcher)."""
    with hydra_session(extra_dirs):
        loader = GlobalHydra.instance().config_loader()
        names = set(loader.get_group_options("hydra/launcher"))
    # The extra dirs enter Hydra's search path only through the composing override, so
    # their launcher profiles are listed from disk.
    for d in extra_dirs:
        names.update(p.stem for p in (Path(d).expanduser() / "hydra" / "launcher").glob("*.yaml"))
    return sorted(names)


def launcher_target(name: str, extra_dirs: Sequence[Path] = ()) -> str:
    """The ``_target_`` class path of launcher profile ``name`` (``hydra/launcher=name``)."""
    with hydra_session(extra_dirs):
        cfg = hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[f"hydra/launcher={name}", *searchpath_override(extra_dirs)],
            return_hydra_config=True,
        )
    return str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
