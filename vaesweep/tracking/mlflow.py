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

Parallel runs (``--jobs N``, SLURM) each log from their own process: the sweep driver creates
the store, the experiment and the parent run before launching (:func:`open_sweep`, which
leaves their ids in the sweep directory), so workers only add rows; SQLite serialises their
writes (MLflow waits up to 20 s on a lock, and a write that still meets one is retried).
Every call is synchronous, whatever ``MLFLOW_ENABLE_ASYNC_LOGGING`` says: a call has stored
its data when it returns, so the tracker's process can exit as soon as the run is done.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.config.tracker import MlflowConfig
from vaesweep.record import contract
from vaesweep.record.files import atomic_write_text, parse_json, read_json, write_json
from vaesweep.tracking.base import RunInfo, as_text, flatten, scalars
from vaesweep.tracking.mlflow_store import (
    client,
    experiment_id,
    quick_client,
    resolve_uri,
    retry,
    shared_client,
    unreachable,
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


class MlflowTracker:
    """Logs one run to MLflow; it runs in the child process of a
    :class:`~vaesweep.tracking.process.ProcessTracker` (:mod:`vaesweep.tracking.worker`)."""

    name = "mlflow"
    #: Seconds between metric writes: epochs in between go out in one batch (one SQLite
    #: transaction), which costs a run far less than a transaction per epoch.
    min_interval_s = 2.0

    def __init__(self, cfg: MlflowConfig, uri_hint: str | None = None) -> None:
        self.cfg = cfg
        #: The store the run will most likely use, opened by :meth:`prepare` ahead of it.
        self.uri_hint = uri_hint
        self.client: Any = None
        self.run_id = ""
        self.info: RunInfo | None = None

    def prepare(self) -> None:
        """Import MLflow and open the hinted store, before the run starts logging."""
        import mlflow.tracking  # noqa: F401

        if self.uri_hint:
            # on_start opens the store it needs, and reports what fails there.
            with suppress(Exception):
                shared_client(self.uri_hint)

    def on_start(self, info: RunInfo) -> None:
        from mlflow.entities import Param, RunTag

        self.info = info
        sweep = _read_handoff(info.sweep_dir / HANDOFF_FILE) if info.sweep_dir else {}
        mine = _read_handoff(info.run_dir / HANDOFF_FILE)
        uri = self.cfg.tracking_uri or sweep.get("tracking_uri") or mine.get("tracking_uri")
        uri = uri or resolve_uri(self.cfg, info.outputs_root)
        self.client = shared_client(uri)
        run_id = mine.get("run_id") if mine.get("tracking_uri") == uri else None
        run = self._reopen(run_id) if run_id else None
        if run is not None:
            self.run_id = run.info.run_id
            tags = {"status": "running", "resumed_after_step": str(info.resumed_step)}
            self._tags(tags | self._stale_points(run, info.resumed_step))
            return
        if sweep.get("tracking_uri") == uri and sweep.get("experiment_id"):
            exp = str(sweep["experiment_id"])
        else:
            exp = experiment_id(self.client, self._experiment_name(info), uri)
        tags = {
            "status": "running",
            "host": info.host or socket.gethostname(),
            "run_dir": str(info.run_dir.resolve()),
            "swept_keys": ",".join(info.hparam_domains) or ",".join(info.hparams),
        }
        if info.sweep_name:
            tags["sweep"] = info.sweep_name
        if sweep.get("tracking_uri") == uri and sweep.get("run_id"):
            tags["mlflow.parentRunId"] = str(sweep["run_id"])
        run = retry(self.client.create_run, exp, tags=tags, run_name=info.name)
        self.run_id = run.info.run_id
        atomic_write_text(
            info.run_dir / HANDOFF_FILE,
            json.dumps({"tracking_uri": uri, "experiment_id": exp, "run_id": self.run_id}),
        )
        params = [
            Param(k, as_text(v)[:_MAX_PARAM]) for k, v in sorted(flatten(info.config).items())
        ]
        hp = [RunTag(f"hparam.{k}", as_text(v)) for k, v in info.hparams.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            chunk = params[i : i + 100]
            retry(self.client.log_batch, self.run_id, params=chunk, synchronous=True)
        if hp:
            retry(self.client.log_batch, self.run_id, tags=hp, synchronous=True)

    def on_epoch(self, rows: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, value, now, int(row["step"]))
            for row in rows
            for name, value in scalars(row)
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            chunk = metrics[i : i + 1000]
            retry(self.client.log_batch, self.run_id, metrics=chunk, synchronous=True)

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        for name, array in images.items():
            image = array[:, :, 0] if array.shape[2] == 1 else array
            retry(self.client.log_image, self.run_id, image, key=name, step=step, synchronous=True)

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        assert self.info is not None
        with tempfile.TemporaryDirectory(prefix="vaesweep-mlflow-") as tmp:
            for name in ARTIFACT_FILES:
                path = self.info.run_dir / name
                if name == contract.SUMMARY_FILE:
                    path = _summary_as_ended(path, status, Path(tmp))
                if path.exists():
                    retry(self.client.log_artifact, self.run_id, str(path))
        iwae = summary.get("iwae") or {}
        if iwae.get("nll") is not None:
            step = int(summary.get("step") or 0)
            retry(
                self.client.log_metric,
                self.run_id,
                "final/iwae_nll",
                iwae["nll"],
                step=step,
                synchronous=True,
            )
        self._tags(
            {"status": status} | ({"error": str(summary["error"])} if summary.get("error") else {})
        )
        mlflow_status = _RUN_STATUS.get(status, "KILLED")
        retry(self.client.set_terminated, self.run_id, mlflow_status)

    # ------------------------------------------------------------------ helpers
    def _experiment_name(self, info: RunInfo) -> str:
        return self.cfg.experiment or info.sweep_name or RUNS_EXPERIMENT

    def _reopen(self, run_id: str) -> Any:
        """Continue an existing run (a resumed vaesweep run): the run, None if the store lost it."""
        try:
            run = retry(self.client.get_run, run_id)
        except Exception:
            return None
        retry(self.client.update_run, run_id, status="RUNNING")
        return run

    def _stale_points(self, run: Any, resumed_step: int | None) -> dict[str, str]:
        """The :data:`STALE_TAG` of a run resumed from a checkpoint older than what it had
        logged (a hard kill): MLflow cannot delete metric points, so those epochs' old points
        stay beside the ones the resumed run logs again at the same steps."""
        if resumed_step is None:
            return {}
        history = retry(self.client.get_metric_history, run.info.run_id, _EPOCH_METRIC)
        done = [int(m.value) for m in history if m.step <= resumed_step]
        stale = sorted({int(m.value) for m in history if m.step > resumed_step})
        if not stale:
            return {}
        span = f"epoch {stale[0]}" if len(stale) == 1 else f"epochs {stale[0]}-{stale[-1]}"
        note = (
            f"{span}: logged before the run was killed, then resumed after epoch "
            f"{max(done, default=0)}; each of their steps holds a stale point beside the "
            "resumed run's newer one, which is the run's"
        )
        old = run.data.tags.get(STALE_TAG)
        return {STALE_TAG: f"{old}; {note}" if old else note}

    def _tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, v[:_MAX_PARAM]) for k, v in tags.items()]
        retry(self.client.log_batch, self.run_id, tags=batch, synchronous=True)


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


# ---------------------------------------------------------------------- sweeps


def open_sweep(
    cfg: MlflowConfig,
    sweep_dir: Path,
    name: str,
    swept_keys: Iterable[str],
    root: Path | None,
    n_runs: int,
) -> dict[str, str]:
    """Create (or reopen, on resume) the sweep's experiment and parent run before launching.

    Leaves ``{"tracking_uri", "experiment_id", "run_id"}`` in ``sweep_dir/mlflow.json`` for
    the runs, which become the parent's children. A store that cannot be reached is a
    :class:`UserError` here, before anything trains.
    """
    uri = resolve_uri(cfg, root)
    path = Path(sweep_dir) / HANDOFF_FILE
    old = _read_handoff(path)
    try:
        mlflow_client = client(uri)
        if old.get("tracking_uri") == uri and old.get("run_id"):
            try:
                retry(mlflow_client.get_run, old["run_id"])
                retry(mlflow_client.update_run, old["run_id"], status="RUNNING")
                return old
            except Exception:
                pass  # the store lost it: open a new one
        exp = experiment_id(mlflow_client, cfg.experiment or name, uri)
        tags = {
            "status": "running",
            "host": socket.gethostname(),
            "sweep": name,
            "sweep_dir": str(Path(sweep_dir).resolve()),
            "swept_keys": ",".join(swept_keys),
            "runs": str(n_runs),
        }
        run = retry(mlflow_client.create_run, exp, tags=tags, run_name=name)
    except Exception as err:
        raise unreachable(uri, err) from None
    handoff = {"tracking_uri": uri, "experiment_id": exp, "run_id": run.info.run_id}
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(handoff))
    return handoff


def close_sweep(sweep_dir: Path, statuses: Iterable[str]) -> None:
    """End the sweep's parent run: FINISHED when every run completed, else FAILED."""
    handoff = _read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    if not handoff.get("run_id"):
        return
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    ok = set(counts) <= {"completed"}
    mlflow_client = client(handoff["tracking_uri"])
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    from mlflow.entities import RunTag

    tags = [RunTag("status", "completed" if ok else "unfinished"), RunTag("runs_status", summary)]
    retry(mlflow_client.log_batch, handoff["run_id"], tags=tags)
    retry(mlflow_client.set_terminated, handoff["run_id"], "FINISHED" if ok else "FAILED")


def upload_report(sweep_dir: Path, report_dir: Path) -> str | None:
    """Log a report's files as artifacts (``report/``) of the sweep's parent run, if it has one."""
    handoff = _read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    if not handoff.get("run_id"):
        return None
    # Bounded: a sweep's server may be long gone when its report is made.
    with quick_client(handoff["tracking_uri"]) as mlflow_client:
        retry(mlflow_client.log_artifacts, handoff["run_id"], str(report_dir), "report")
    return str(handoff["run_id"])


def _read_handoff(path: Path) -> dict[str, Any]:
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
