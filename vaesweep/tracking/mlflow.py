"""MLflow: one experiment per sweep, a parent run for the sweep and a child run per run.

Store: ``tracker.mlflow.tracking_uri``, by default ``sqlite:///<outputs>/mlflow.db`` (artifacts
next to it in ``mlartifacts/``); any MLflow URI works the same, e.g. a team server. Per run:
params = the flattened resolved config (``train.lr``), every metrics.csv value as the metric
``<split>/<column>`` at the row's step, the grids every ``tracker.image_every`` epochs, tags
(status, swept keys, host, sweep, run directory) and, at the end, config.yaml, summary.json,
the PNGs and train.log as artifacts. The run's id is kept in its directory
(:data:`HANDOFF_FILE`), so resuming continues the same MLflow run. After a hard kill the points
logged past the checkpoint stay beside the resumed run's (MLflow cannot delete metric points):
its tag :data:`STALE_TAG` names their epochs.

The tracker writes to a :class:`~vaesweep.tracking.mlflow_store.Store`: in the run's own
process a local SQLite store is written directly (:mod:`~vaesweep.tracking.mlflow_route`
decides), anything else through MLflow's client in a child process. Parallel runs (``--jobs
N``, SLURM) each log from their own process: the sweep driver creates the store, the
experiment and the parent run before launching (:mod:`~vaesweep.tracking.mlflow_sweep`, which
leaves their ids in the sweep directory), so workers only add rows; SQLite serialises their
writes (a writer waits up to 20 s on a lock, and a write that still meets one is retried).
Every call is synchronous, whatever ``MLFLOW_ENABLE_ASYNC_LOGGING`` says: a call has stored
its data when it returns, so the tracker's process can exit as soon as the run is done.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.config.tracker import MlflowConfig
from vaesweep.record import contract
from vaesweep.record.files import atomic_write_text, parse_json, read_json, write_json
from vaesweep.tracking.base import RunInfo, as_text, flatten, scalars
from vaesweep.tracking.mlflow_store import (
    Store,
    artifact_location,
    resolve_uri,
    retry,
    shared_store,
)

#: In a run or sweep directory: ``{"tracking_uri", "experiment_id", "run_id"}``.
HANDOFF_FILE = contract.MLFLOW_FILE
#: Experiment of single runs (``vaesweep train``) unless tracker.mlflow.experiment names one.
RUNS_EXPERIMENT = "vaesweep-runs"
#: Files of the record logged as artifacts at the end of a run.
ARTIFACT_FILES = (
    contract.CONFIG_FILE,
    contract.SUMMARY_FILE,
    contract.RECONSTRUCTIONS_FILE,
    contract.SAMPLES_FILE,
    contract.TRAVERSALS_FILE,
    "train.log",
)
#: A run's status as MLflow's run status (an interrupted run, resumable, is KILLED).
_RUN_STATUS = {
    contract.COMPLETED: "FINISHED",
    contract.DIVERGED: "FAILED",
    contract.FAILED: "FAILED",
    contract.INTERRUPTED: "KILLED",
}
#: Tag of a run resumed after a hard kill: the epochs whose older metric points are stale.
STALE_TAG = "stale_points"
#: The metric whose points say which epoch each logged step belongs to.
_EPOCH_METRIC = "train/epoch"
#: MLflow's longest parameter value.
_MAX_PARAM = 6000


def handoffs(info: RunInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sweep's and the run's own :data:`HANDOFF_FILE` (empty where there is none)."""
    sweep = read_handoff(info.sweep_dir / HANDOFF_FILE) if info.sweep_dir else {}
    return sweep, read_handoff(info.run_dir / HANDOFF_FILE)


def run_uri(cfg: MlflowConfig, info: RunInfo, found: tuple[dict[str, Any], ...] = ()) -> str:
    """The store a run logs to: the config's, else its sweep's, else the one it logged to
    before (a resumed run), else the default beside its outputs. ``found``: the
    :func:`handoffs`, if read already."""
    sweep, mine = found or handoffs(info)
    uri = cfg.tracking_uri or sweep.get("tracking_uri") or mine.get("tracking_uri")
    return str(uri or resolve_uri(cfg, info.outputs_root))


class MlflowTracker:
    """Logs one run to an MLflow store.

    ``direct_only`` (in the run's own process, :mod:`~vaesweep.tracking.mlflow_route`): the
    store must be one written directly, else :meth:`on_start` raises
    :class:`~vaesweep.tracking.mlflow_files.NotDirect` before writing anything. Otherwise
    (the child process of a :class:`~vaesweep.tracking.process.ProcessTracker`) the store is
    the one ``tracker.mlflow.writer`` chooses.
    """

    name = "mlflow"
    #: Seconds between metric writes: epochs in between go out in one batch (one SQLite
    #: transaction), which costs a run far less than a transaction per epoch.
    min_interval_s = 2.0

    def __init__(
        self, cfg: MlflowConfig, uri_hint: str | None = None, direct_only: bool = False
    ) -> None:
        self.cfg = cfg
        #: The store the run will most likely use, opened by :meth:`prepare` ahead of it.
        self.uri_hint = uri_hint
        self.direct_only = direct_only
        self.store: Store | None = None
        self.run_id = ""
        self.info: RunInfo | None = None

    def prepare(self) -> None:
        """MLflow's client: import MLflow and open the hinted store before the run logs."""
        if self.direct_only or self.cfg.writer != "client":
            return
        import mlflow.tracking  # noqa: F401

        if self.uri_hint:
            # on_start opens the store it needs, and reports what fails there.
            with suppress(Exception):
                shared_store(self.uri_hint, self.cfg.writer)

    def on_start(self, info: RunInfo) -> None:
        self.info = info
        sweep, mine = handoffs(info)
        uri = run_uri(self.cfg, info, (sweep, mine))
        self.store = store = shared_store(uri, "direct" if self.direct_only else self.cfg.writer)
        run_id = mine.get("run_id") if mine.get("tracking_uri") == uri else None
        tags = retry(store.reopen, str(run_id)) if run_id else None
        if run_id and tags is not None:
            self.run_id = str(run_id)
            resumed = {"status": "running", "resumed_after_step": str(info.resumed_step)}
            self._tags(resumed | self._stale_points(tags, info.resumed_step))
            return
        if sweep.get("tracking_uri") == uri and sweep.get("experiment_id"):
            exp = str(sweep["experiment_id"])
        else:
            name = self.cfg.experiment or info.sweep_name or RUNS_EXPERIMENT
            exp = retry(store.experiment_id, name, artifact_location(uri, name))
        new_tags = {
            "status": "running",
            "host": info.host or socket.gethostname(),
            "run_dir": str(info.run_dir.resolve()),
            "swept_keys": ",".join(info.hparam_domains) or ",".join(info.hparams),
        }
        if info.sweep_name:
            new_tags["sweep"] = info.sweep_name
        if sweep.get("tracking_uri") == uri and sweep.get("run_id"):
            new_tags["mlflow.parentRunId"] = str(sweep["run_id"])
        self.run_id = retry(store.create_run, exp, new_tags, info.name)
        write_handoff(
            info.run_dir, {"tracking_uri": uri, "experiment_id": exp, "run_id": self.run_id}
        )
        params = [(k, as_text(v)[:_MAX_PARAM]) for k, v in sorted(flatten(info.config).items())]
        hp = [(f"hparam.{k}", as_text(v)[:_MAX_PARAM]) for k, v in info.hparams.items()]
        retry(store.log_batch, self.run_id, params=params, tags=hp)

    def on_epoch(self, rows: list[dict[str, Any]]) -> None:
        assert self.store is not None
        now = int(time.time() * 1000)
        metrics = [
            (name, value, now, int(row["step"])) for row in rows for name, value in scalars(row)
        ]
        retry(self.store.log_batch, self.run_id, metrics=metrics)

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        assert self.store is not None
        for name, array in images.items():
            image = array[:, :, 0] if array.shape[2] == 1 else array
            retry(self.store.log_image, self.run_id, name, image, step)

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        assert self.info is not None and self.store is not None
        store = self.store
        with tempfile.TemporaryDirectory(prefix="vaesweep-mlflow-") as tmp:
            for name in ARTIFACT_FILES:
                path = self.info.run_dir / name
                if name == contract.SUMMARY_FILE:
                    path = _summary_as_ended(path, status, Path(tmp))
                if path.exists():
                    retry(store.log_artifact, self.run_id, path)
        iwae = summary.get("iwae") or {}
        if iwae.get("nll") is not None:
            point = ("final/iwae_nll", float(iwae["nll"]), int(time.time() * 1000))
            retry(store.log_batch, self.run_id, metrics=[(*point, int(summary.get("step") or 0))])
        self._tags(
            {"status": status} | ({"error": str(summary["error"])} if summary.get("error") else {})
        )
        retry(store.terminate, self.run_id, _RUN_STATUS.get(status, "KILLED"))

    # ------------------------------------------------------------------ helpers
    def _stale_points(self, tags: dict[str, str], resumed_step: int | None) -> dict[str, str]:
        """The :data:`STALE_TAG` of a run resumed from a checkpoint older than what it had
        logged (a hard kill): MLflow cannot delete metric points, so those epochs' old points
        stay beside the ones the resumed run logs again at the same steps."""
        if resumed_step is None:
            return {}
        assert self.store is not None
        history = retry(self.store.metric_history, self.run_id, _EPOCH_METRIC)
        done = [int(value) for step, value in history if step <= resumed_step]
        stale = sorted({int(value) for step, value in history if step > resumed_step})
        if not stale:
            return {}
        span = f"epoch {stale[0]}" if len(stale) == 1 else f"epochs {stale[0]}-{stale[-1]}"
        note = (
            f"{span}: logged before the run was killed, then resumed after epoch "
            f"{max(done, default=0)}; each of their steps holds a stale point beside the "
            "resumed run's newer one, which is the run's"
        )
        old = tags.get(STALE_TAG)
        return {STALE_TAG: f"{old}; {note}" if old else note}

    def _tags(self, tags: dict[str, str]) -> None:
        assert self.store is not None
        batch = [(k, v[:_MAX_PARAM]) for k, v in tags.items()]
        retry(self.store.log_batch, self.run_id, tags=batch)


def _summary_as_ended(path: Path, status: str, tmp: Path) -> Path:
    """``path`` (summary.json), or a copy of it in ``tmp`` that says ``status``: a run stopped
    by Ctrl-C or a launcher's signal ends while its file still says ``running`` (the command
    marks it interrupted after the trackers have ended), and the artifact is what stays."""
    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return path  # missing or damaged: logged as it is, if at all
    if summary.get("status") == status:
        return path
    copy = tmp / path.name
    write_json(copy, {**summary, "status": status}, durable=False)
    return copy


def read_handoff(path: Path) -> dict[str, Any]:
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_handoff(folder: Path, handoff: dict[str, str]) -> None:
    """Leave ``{"tracking_uri", "experiment_id", "run_id"}`` in ``folder`` (:data:`HANDOFF_FILE`)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / HANDOFF_FILE, json.dumps(handoff))
