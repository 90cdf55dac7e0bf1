"""MLflow's own client behind the store interface of :mod:`vaesweep.tracking.mlflow_store`.

Used for every store that :mod:`~vaesweep.tracking.mlflow_sqlite` does not write itself: a
server, another database, a SQLite store of an unverified schema, a new store (MLflow builds
its schema), or ``tracker.mlflow.writer=client``. Importing MLflow costs 1.3 s of CPU or
more, so a run reaches this only from its tracker's child process
(:mod:`vaesweep.tracking.worker`); commands reach it for a sweep's parent run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.tracking.mlflow_sqlite import sqlite_path

#: MLflow's largest batches, by kind (its REST API's limits).
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a new local SQLite store is created whole first
    (:func:`create_sqlite_store`)."""
    from mlflow.tracking import MlflowClient

    from vaesweep.tracking.mlflow_store import retry

    # After the import, which sets mlflow's own level: its INFO lines (schema migrations)
    # are noise in a run's log.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow prints a run's and its experiment's links at each run's end on a server store:
    # two lines per run of a sweep on the terminal. The README says how to open the store.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            create_sqlite_store(path)
    return retry(MlflowClient, tracking_uri=uri)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def create_sqlite_store(path: Path) -> None:
    """Create MLflow's SQLite store ``path`` under a temporary name, then link it into place.

    MLflow builds a new store's schema in dozens of migrations (about 1.5 s of CPU); a process
    killed among them (Ctrl-C during the first run's start, when the run stops waiting for its
    tracker) left a store that no later run could open ("table ... already exists"). Now a
    killed creation leaves only the hidden temporary file, and a store made meanwhile by
    another process (parallel runs) is kept, never replaced.
    """
    from mlflow.tracking import MlflowClient

    from vaesweep.tracking.mlflow_store import retry

    tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
    # Files of creations whose process was killed: ".<name>.<pid>.creating[-journal]".
    for left in path.parent.glob(f".{path.name}.*.creating*"):
        pid = left.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            left.unlink(missing_ok=True)
    try:
        retry(MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments, max_results=1)
        try:
            os.link(tmp, path)  # fails if the store exists by now
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def quick_http() -> Iterator[None]:
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


class ClientStore:
    """The store interface (:class:`~vaesweep.tracking.mlflow_store.Store`) on ``MlflowClient``."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = client(uri)

    def experiment_id(self, name: str, location: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:  # another process created it meanwhile
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def create_run(self, experiment_id: str, tags: dict[str, str], name: str) -> str:
        return str(self.client.create_run(experiment_id, tags=tags, run_name=name).info.run_id)

    def reopen(self, run_id: str) -> dict[str, str] | None:
        try:
            run = self.client.get_run(run_id)
        except Exception as err:
            if "locked" in str(err).lower():
                raise  # retried by the caller
            return None  # the store lost it
        if run.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run_id, status="RUNNING")
        return dict(run.data.tags)

    def terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        params: Sequence[tuple[str, str]] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        batches: dict[str, list[Any]] = {
            "metrics": [Metric(k, v, ts, step) for k, v, ts, step in metrics],
            "params": [Param(k, v) for k, v in params],
            "tags": [RunTag(k, v) for k, v in tags],
        }
        for kind, items in batches.items():
            for i in range(0, len(items), _BATCH[kind]):
                chunk = {kind: items[i : i + _BATCH[kind]]}
                self.client.log_batch(run_id, **chunk, synchronous=True)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(int(m.step), float(m.value)) for m in self.client.get_metric_history(run_id, key)]

    def log_image(self, run_id: str, key: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(run_id, image, key=key, step=step, synchronous=True)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str = "") -> None:
        self.client.log_artifact(run_id, str(path), artifact_path or None)

    def log_artifacts(self, run_id: str, source: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(source), artifact_path)
