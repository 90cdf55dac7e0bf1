"""Every use of Hydra's and joblib's private internals, in one place.

Each hook below is pinned by tests/test_bridge_hooks.py, so an upgrade of hydra-core or joblib
that moves or changes one of them fails those tests loudly instead of silently slowing down or
breaking sweeps:

* :func:`apply_value_overrides` — ``ConfigLoaderImpl._apply_overrides_to_config``, to apply a
  run's value overrides to a shared composition exactly as Hydra does after composing;
* :func:`sweeper_trusts_validation` — swaps ``BasicSweeper.validate_batch_is_legal`` for a no-op;
* :func:`multirun_uses_composition` — has ``Hydra.multirun`` start from a composition vaesweep
  already made and validated (its config loader's ``load_configuration`` in MULTIRUN mode);
* :func:`release_joblib_workers` — shuts down loky's module-level reusable executor;
* :func:`trackers_ignore_hangup` — starts loky's (and multiprocessing's) resource tracker,
  which the joblib workers share, with SIGHUP ignored;
* :func:`sweeper_launches_only` — filters ``BasicSweeper.get_job_batch`` (a resumed sweep
  launches only the jobs with something left to train);
* :func:`submitit_waits_for_every_job` — wraps submitit's ``Job.results``, which the submitit
  launcher calls job by job and which raises at the first job that did not complete;
* :func:`scheduler_errors_unprinted` — shadows ``print`` in ``submitit.core.utils``, whose
  ``CommandFunction`` prints a failed ``sbatch``'s stderr before raising it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import DictConfig

log = logging.getLogger(__name__)

#: Where loky keeps the executor the joblib launcher reuses.
LOKY_MODULE = "joblib.externals.loky.reusable_executor"
#: Where loky keeps the resource tracker its workers share (``ensure_running``).
LOKY_TRACKER_MODULE = "joblib.externals.loky.backend.resource_tracker"


def apply_value_overrides(overrides: list[Any], cfg: DictConfig) -> None:
    """Apply parsed value overrides (``beta=0.1``) to ``cfg`` in place, as Hydra's loader does."""
    ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)


@contextmanager
def sweeper_trusts_validation() -> Iterator[None]:
    """Skip BasicSweeper's second composition of every job while vaesweep launches.

    Before launching, the sweeper composes each job once more "to catch composition errors
    early" (about 70 ms a run, serially, before the first run starts). vaesweep has already
    composed and range-checked every run (:func:`vaesweep.bridge.grid.validate_jobs`,
    :func:`vaesweep.bridge.compose.compose`), and the launcher composes each job again where it
    runs, so the check is dropped for the duration of the launch only.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    own = BasicSweeper.__dict__.get("validate_batch_is_legal")
    BasicSweeper.validate_batch_is_legal = lambda self, batch: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del BasicSweeper.validate_batch_is_legal
        else:
            BasicSweeper.validate_batch_is_legal = own  # type: ignore[method-assign]


@contextmanager
def multirun_uses_composition(hydra: Any, cfg: DictConfig) -> Iterator[None]:
    """Let ``hydra.multirun`` start from ``cfg`` instead of composing its config again.

    ``Hydra.multirun`` first composes the launch's config (``compose_config`` calls its config
    loader's ``load_configuration`` with ``RunMode.MULTIRUN``), then the launcher composes each
    job from that config's recorded overrides (``load_sweep_config``, ``RunMode.RUN``). For a
    single run vaesweep has already composed and validated exactly that config, with the same
    overrides, before creating anything (:func:`vaesweep.bridge.compose.compose_launch`), so the
    multirun's composition returns it; the job's own composition is untouched. Only this Hydra
    instance's loader is patched, for the duration.
    """
    from hydra.types import RunMode

    loader = hydra.config_loader
    load = loader.load_configuration

    def reuse(*args: Any, **kwargs: Any) -> DictConfig:
        if kwargs.get("run_mode") == RunMode.MULTIRUN:
            return cfg
        return load(*args, **kwargs)

    loader.load_configuration = reuse
    try:
        yield
    finally:
        del loader.load_configuration


def release_joblib_workers() -> None:
    """Stop the joblib launcher's idle worker processes now rather than at interpreter exit.

    Loky keeps its workers for reuse and only ends them in an exit handler, which kept the
    command waiting about a second after the last run had finished. The executor is taken as
    it is: ``get_reusable_executor()`` with its default arguments would not match the one
    joblib made, and would replace it (waiting for its workers) with a new pool to shut down.
    """
    module = sys.modules.get(LOKY_MODULE)
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def trackers_ignore_hangup() -> None:
    """Start the resource trackers the joblib workers will share, with SIGHUP ignored.

    A closed terminal (or ``timeout -s HUP``) sends SIGHUP to the whole process group. The
    trackers ignore SIGINT and SIGTERM but not SIGHUP, so they died, and the workers' clean-up
    flooded stderr with the relaunched tracker's KeyErrors ("resource_tracker: process died
    unexpectedly"). An ignored signal stays ignored through exec, so a tracker started while
    this process ignores SIGHUP ignores it too; the driver's own handler is back at once.
    A tracker already running is left as it is; outside the main thread nothing is done.
    """
    import importlib
    import signal
    from multiprocessing import resource_tracker

    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        return
    try:
        previous = signal.signal(hangup, signal.SIG_IGN)
    except ValueError:  # not the main thread
        return
    try:
        importlib.import_module(LOKY_TRACKER_MODULE).ensure_running()
        resource_tracker.ensure_running()
    finally:
        signal.signal(hangup, previous)


@contextmanager
def sweeper_launches_only(keep: Callable[[list[str]], bool] | None) -> Iterator[None]:
    """While inside, the sweeper launches only the jobs whose override list ``keep`` accepts.

    BasicSweeper expands the whole product of the swept values; a resumed sweep must not
    launch (on SLURM: submit) the runs that have completed. ``None`` keeps every job.
    """
    if keep is None:
        yield
        return
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    own = BasicSweeper.__dict__["get_job_batch"]

    def get_job_batch(self: Any) -> Sequence[Sequence[str]]:
        return [job for job in own(self) if keep(list(job))]

    BasicSweeper.get_job_batch = get_job_batch  # type: ignore[method-assign]
    try:
        yield
    finally:
        BasicSweeper.get_job_batch = own  # type: ignore[method-assign]


@contextmanager
def submitit_waits_for_every_job() -> Iterator[list[str]]:
    """While inside, a submitit job that ended without a result (cancelled, failed, killed)
    is recorded instead of raised, so the launch waits for every other job of its array.

    The submitit launcher collects ``[job.results()[0] for job in jobs]``: at the first job
    cancelled with ``scancel`` it raised ``UncompletedJobError`` while later jobs still ran, and
    the sweep's lock was released under them. Yields the list that collects one line per such
    job (``job 123_1 ended CANCELLED``); the job's result becomes an empty completed
    ``JobReturn`` (its run's own record says what happened to it).
    """
    failed: list[str] = []
    try:
        from submitit.core import core, utils
    except ImportError:  # no submitit launcher installed: nothing to wrap
        yield failed
        return
    from hydra.core.utils import JobReturn, JobStatus

    own = core.Job.__dict__["results"]

    def results(self: Any) -> list[Any]:
        try:
            return list(own(self))
        except (utils.UncompletedJobError, utils.FailedJobError):
            try:
                state = str(self.state).split()[0]
            except Exception:  # the scheduler did not answer: say what is known
                state = "without a result"
            failed.append(f"job {self.job_id} ended {state}")
            return [JobReturn(status=JobStatus.COMPLETED)]

    core.Job.results = results  # type: ignore[method-assign]
    try:
        yield failed
    finally:
        core.Job.results = own  # type: ignore[method-assign]


@contextmanager
def scheduler_errors_unprinted() -> Iterator[None]:
    """While inside, submitit does not print a failed scheduler command's stderr itself.

    ``CommandFunction`` prints it (``sbatch: error: ...``) and then raises ``FailedJobError``
    with the same text, which the launch turns into its one line: printed here too, the user's
    one line would be two. The text goes to the debug log instead.
    """
    try:
        from submitit.core import utils
    except ImportError:  # no submitit launcher installed: nothing to quiet
        yield
        return

    def to_log(*parts: Any, file: Any = None, **_: Any) -> None:
        log.debug("submitit: %s", " ".join(str(p) for p in parts))

    utils.print = to_log  # type: ignore[attr-defined]  # a module global shadows the builtin
    try:
        yield
    finally:
        del utils.print  # type: ignore[attr-defined]
