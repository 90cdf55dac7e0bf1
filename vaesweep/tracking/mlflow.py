"""MLflow: one experiment per sweep, a parent run for the sweep and a child run per run.

Store: ``tracker.mlflow.tracking_uri``, by default ``sqlite:///<outputs>/mlflow.db`` (artifacts
next to it in ``mlartifacts/``); any MLflow URI works the same, e.g. a team server. Per run:
params = the flattened resolved config (``train.lr``), every metrics.csv value as the metric
``<split>/<column>`` at the row's step, the grids every ``tracker.image_every`` epochs, tags
(status, swept keys, host, sweep, run directory) and, at the end, config.yaml, summary.json,
the PNGs and train.log as artifacts. The run's id is kept in its directory
(:data:`HANDOFF_FILE`), so resuming continues the same MLflow run.

Parallel runs (``--jobs N``, SLURM) each log from their own process: the sweep driver creates
the store, the experiment and the parent run before launching (:func:`open_sweep`, which
leaves their ids in the sweep directory), so workers only add rows; SQLite serialises their
writes (MLflow waits up to 20 s on a lock, and a write that still meets one is retried).
Every call is synchronous, whatever ``MLFLOW_ENABLE_ASYNC_LOGGING`` says: a call has stored
its data when it returns, so the tracker's process can exit as soon as the run is done.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vaesweep.config.tracker import MlflowConfig
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.record.files import atomic_write_text
from vaesweep.record.layout import MLFLOW_ARTIFACTS_DIR, MLFLOW_STORE, outputs_root
from vaesweep.tracking.base import RunInfo, as_text, flatten, scalars

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
_RUN_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED"}
#: MLflow's longest parameter value.
_MAX_PARAM = 6000
_T = TypeVar("_T")


def default_uri(root: Path) -> str:
    return f"sqlite:///{(Path(root) / MLFLOW_STORE).expanduser().resolve()}"


def resolve_uri(cfg: MlflowConfig, root: Path | None) -> str:
    """The store's URI: ``tracker.mlflow.tracking_uri``, else ``<outputs>/mlflow.db``."""
    return cfg.tracking_uri or default_uri(root or outputs_root())


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a local SQLite store's folder is created first."""
    from mlflow.tracking import MlflowClient

    # After the import, which sets mlflow's own level: its INFO lines (schema migrations)
    # are noise in a run's log.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)

    return _retry(MlflowClient, tracking_uri=uri)


#: The tracker process's clients by URI, shared by the runs it logs: opening a SQLite store
#: checks its schema, about 1 s of CPU.
_CLIENTS: dict[str, Any] = {}


def shared_client(uri: str) -> Any:
    if uri not in _CLIENTS:
        _CLIENTS[uri] = client(uri)
    return _CLIENTS[uri]


def experiment_id(mlflow_client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if needed (by whichever process comes first)."""
    found = _retry(mlflow_client.get_experiment_by_name, name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            _retry(mlflow_client.restore_experiment, found.experiment_id)
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        slug = re.sub(r"[^\w.=,+-]+", "_", name).strip("_") or "experiment"
        location = (Path(uri[len("sqlite:///") :]).parent / MLFLOW_ARTIFACTS_DIR / slug).as_uri()
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=location))
    except Exception:
        found = _retry(mlflow_client.get_experiment_by_name, name)
        if found is None:
            raise
        return str(found.experiment_id)


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
        if run_id and self._reopen(run_id):
            self.run_id = run_id
            self._tags({"status": "running", "resumed_after_step": str(info.resumed_step)})
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
        run = _retry(self.client.create_run, exp, tags=tags, run_name=info.name)
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
            _retry(self.client.log_batch, self.run_id, params=chunk, synchronous=True)
        if hp:
            _retry(self.client.log_batch, self.run_id, tags=hp, synchronous=True)

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
            _retry(self.client.log_batch, self.run_id, metrics=chunk, synchronous=True)

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        for name, array in images.items():
            image = array[:, :, 0] if array.shape[2] == 1 else array
            _retry(self.client.log_image, self.run_id, image, key=name, step=step, synchronous=True)

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        assert self.info is not None
        for name in ARTIFACT_FILES:
            path = self.info.run_dir / name
            if path.exists():
                _retry(self.client.log_artifact, self.run_id, str(path))
        iwae = summary.get("iwae") or {}
        if iwae.get("nll") is not None:
            step = int(summary.get("step") or 0)
            _retry(
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
        _retry(self.client.set_terminated, self.run_id, mlflow_status)

    # ------------------------------------------------------------------ helpers
    def _experiment_name(self, info: RunInfo) -> str:
        return self.cfg.experiment or info.sweep_name or RUNS_EXPERIMENT

    def _reopen(self, run_id: str) -> bool:
        """Continue an existing run (a resumed vaesweep run); False if the store lost it."""
        try:
            _retry(self.client.get_run, run_id)
        except Exception:
            return False
        _retry(self.client.update_run, run_id, status="RUNNING")
        return True

    def _tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, v[:_MAX_PARAM]) for k, v in tags.items()]
        _retry(self.client.log_batch, self.run_id, tags=batch, synchronous=True)


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
                _retry(mlflow_client.get_run, old["run_id"])
                _retry(mlflow_client.update_run, old["run_id"], status="RUNNING")
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
        run = _retry(mlflow_client.create_run, exp, tags=tags, run_name=name)
    except Exception as err:
        raise _unreachable(uri, err) from None
    handoff = {"tracking_uri": uri, "experiment_id": exp, "run_id": run.info.run_id}
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(handoff))
    return handoff


def check_store(cfg: MlflowConfig, root: Path | None) -> None:
    """Make sure the store can be used before a run starts, without importing MLflow.

    A local store (``sqlite:///<file>``, a path): its folder must be writable (the run's
    tracker process creates the file). A server (``http(s)://``): something must answer there
    within :data:`PROBE_TIMEOUT_S` (MLflow's own retries would take minutes to say it is not
    there). Any other URI (a database server, Databricks) is asked through MLflow, its retries
    cut short; the runs themselves keep MLflow's patient defaults.
    """
    uri = resolve_uri(cfg, root)
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if uri.startswith("databricks"):  # "databricks", "databricks-uc": no "://"
        scheme = "databricks"
    try:
        if scheme == "sqlite":
            if not uri.startswith("sqlite:///") or not uri[len("sqlite:///") :].strip():
                raise ValueError("a SQLite store is written sqlite:///<path of the file>")
            _writable(Path(uri[len("sqlite:///") :]).parent)
        elif scheme in ("", "file"):
            _writable(Path(uri[len("file://") :] if scheme else uri))
        elif scheme in ("http", "https"):
            _probe(uri)
        else:
            with _quick_http():
                _retry(client(uri).search_experiments, max_results=1)
    except Exception as err:
        raise _unreachable(uri, err) from None


#: Seconds a tracking server has to answer before a run starts.
PROBE_TIMEOUT_S = 10.0


def _writable(folder: Path) -> None:
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"the folder {folder} is not writable")


def _probe(uri: str) -> None:
    """Any answer from the server's ``/health`` (even 401, 404 or a certificate MLflow may be
    told to accept) means it is there."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as err:
        if not isinstance(err.reason, ssl.SSLError):
            raise


@contextmanager
def _quick_http() -> Iterator[None]:
    """MLflow's HTTP retries cut short, unless the user chose them (``MLFLOW_HTTP_*``)."""
    quick = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    }
    added = [k for k in quick if k not in os.environ]
    os.environ.update({k: quick[k] for k in added})
    retries = logging.getLogger("urllib3.connectionpool")  # "Retrying ..." lines: noise here
    level = retries.level
    retries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        retries.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


def _unreachable(uri: str, err: Exception) -> UserError:
    first = f"{type(err).__name__}: {err}".splitlines()[0]
    if any(m in first for m in ("Max retries exceeded", "NewConnectionError", "urlopen error")):
        first = "no server answers there"
    first = first if len(first) <= 200 else first[:200] + "..."
    return UserError(
        f"tracker=mlflow cannot use the store {uri} ({first}); start the server or set "
        "tracker.mlflow.tracking_uri to one that works"
    )


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
    _retry(mlflow_client.log_batch, handoff["run_id"], tags=tags)
    _retry(mlflow_client.set_terminated, handoff["run_id"], "FINISHED" if ok else "FAILED")


def upload_report(sweep_dir: Path, report_dir: Path) -> str | None:
    """Log a report's files as artifacts (``report/``) of the sweep's parent run, if it has one."""
    handoff = _read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    if not handoff.get("run_id"):
        return None
    mlflow_client = client(handoff["tracking_uri"])
    _retry(mlflow_client.log_artifacts, handoff["run_id"], str(report_dir), "report")
    return str(handoff["run_id"])


def _read_handoff(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _retry(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``call(*args, **kwargs)``, again after a short wait while SQLite reports a lock."""
    tries = 6
    for attempt in range(tries):
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if attempt == tries - 1 or "locked" not in str(err).lower():
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")
