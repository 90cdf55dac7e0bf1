"""Where MLflow logs: the store's URI, the store a run writes to, the experiment's artifact
folder, the light check before anything trains, and calls retried while SQLite reports a lock.

A store (:class:`Store`) is written directly (:mod:`~vaesweep.tracking.mlflow_sqlite`, a local
SQLite store of a verified schema) or through MLflow's client
(:mod:`~vaesweep.tracking.mlflow_client`). Nothing here imports MLflow at module level:
:func:`check_store` runs in the training process, which never imports it (a local store is
checked on disk, a server by one HTTP request).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from vaesweep.config.tracker import MlflowConfig
from vaesweep.errors import UserError
from vaesweep.record.layout import MLFLOW_ARTIFACTS_DIR, MLFLOW_STORE, outputs_root
from vaesweep.tracking.mlflow_files import NotDirect
from vaesweep.tracking.mlflow_sqlite import SqliteStore, direct_store, sqlite_path

_T = TypeVar("_T")


def default_uri(root: Path) -> str:
    return f"sqlite:///{(Path(root) / MLFLOW_STORE).expanduser().resolve()}"


def resolve_uri(cfg: MlflowConfig, root: Path | None) -> str:
    """The store's URI: ``tracker.mlflow.tracking_uri``, else ``<outputs>/mlflow.db``."""
    return cfg.tracking_uri or default_uri(root or outputs_root())


class Store(Protocol):
    """What a run's tracker and a sweep's parent run need of an MLflow store.

    Metrics are ``(key, value, timestamp in ms, step)``; statuses are MLflow's (FINISHED,
    FAILED, KILLED). Implemented by :class:`~vaesweep.tracking.mlflow_sqlite.SqliteStore` and
    :class:`~vaesweep.tracking.mlflow_client.ClientStore`.
    """

    uri: str

    def experiment_id(self, name: str, location: str | None) -> str: ...

    def create_run(self, experiment_id: str, tags: dict[str, str], name: str) -> str: ...

    def reopen(self, run_id: str) -> dict[str, str] | None: ...

    def terminate(self, run_id: str, status: str) -> None: ...

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        params: Sequence[tuple[str, str]] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None: ...

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]: ...

    def log_image(self, run_id: str, key: str, image: np.ndarray, step: int) -> None: ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str = "") -> None: ...

    def log_artifacts(self, run_id: str, source: Path, artifact_path: str) -> None: ...


def direct(cfg: MlflowConfig, uri: str) -> bool:
    """Whether a run logs to ``uri`` directly (in its own process, without MLflow's client)."""
    return cfg.writer == "auto" and direct_store(uri) is not None


def open_store(uri: str, writer: str = "auto") -> Store:
    """The store at ``uri``: written directly where it can be (``writer="auto"``), else
    through MLflow's client (which creates a new local SQLite store whole). ``"direct"``:
    only directly (:class:`~vaesweep.tracking.mlflow_files.NotDirect` where it cannot be;
    MLflow is never imported)."""
    path = direct_store(uri) if writer in ("auto", "direct") else None
    if path is not None:
        return SqliteStore(path, uri)
    if writer == "direct":
        raise NotDirect(f"{uri} is not a store vaesweep writes directly")
    from vaesweep.tracking.mlflow_client import ClientStore

    return ClientStore(uri)


#: The stores by process, URI and writer, shared by the runs a process logs: opening one
#: through MLflow's client imports the SQLAlchemy store and checks its schema, about 1 s of
#: CPU. A forked process opens its own (a SQLite connection must not cross a fork).
_STORES: dict[tuple[int, str, str], Store] = {}


def shared_store(uri: str, writer: str = "auto") -> Store:
    key = (os.getpid(), uri, writer)
    if key not in _STORES:
        _STORES[key] = open_store(uri, writer)
    return _STORES[key]


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: ``mlartifacts/
    <experiment>`` beside the store (None elsewhere: the store's or server's default)."""
    path = sqlite_path(uri)
    if path is None:
        return None
    slug = re.sub(r"[^\w.=,+-]+", "_", experiment).strip("_") or "experiment"
    return (path.parent / MLFLOW_ARTIFACTS_DIR / slug).as_uri()


def check_store(cfg: MlflowConfig, root: Path | None, create: bool = True) -> None:
    """Make sure the store can be used before a run starts, without importing MLflow.

    A local store (``sqlite:///<file>``, a path): its folder must be writable (the run's
    tracker process creates the file). A server (``http(s)://``): something must answer there
    within :data:`PROBE_TIMEOUT_S` (MLflow's own retries would take minutes to say it is not
    there). Any other URI (a database server, Databricks) is asked through MLflow, its retries
    cut short; the runs themselves keep MLflow's patient defaults. ``create=False`` (a dry
    run) writes nothing: a local store's missing folders and file are not created, an
    existing SQLite file is opened read-only.
    """
    uri = resolve_uri(cfg, root)
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if uri.startswith("databricks"):  # "databricks", "databricks-uc": no "://"
        scheme = "databricks"
    try:
        if scheme == "sqlite":
            if not uri.startswith("sqlite:///") or not uri[len("sqlite:///") :].strip():
                raise ValueError("a SQLite store is written sqlite:///<path of the file>")
            _sqlite_file(Path(uri[len("sqlite:///") :]), create)
        elif scheme in ("", "file"):
            _writable(Path(uri[len("file://") :] if scheme else uri), create)
        elif scheme in ("http", "https"):
            _probe(uri)
        else:
            from vaesweep.tracking.mlflow_client import client, quick_http

            with quick_http():
                retry(client(uri).search_experiments, max_results=1)
    except Exception as err:
        raise unreachable(uri, err) from None


#: Seconds a tracking server has to answer before a run starts.
PROBE_TIMEOUT_S = 10.0


def _writable(folder: Path, create: bool = True) -> None:
    """``folder`` is (made, if ``create``) a folder this process may write in; without
    ``create``, its nearest existing ancestor must be one."""
    folder = folder.expanduser()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"the folder {existing} is not writable")


def _sqlite_file(path: Path, create: bool = True) -> None:
    """The store's file can be opened as a SQLite database (or created): a folder, a file of
    something else or an unwritable place is found here, not after the run has trained
    (MLflow then retries for minutes and the run ends without its tracker)."""
    import sqlite3

    path = path.expanduser()
    _writable(path.parent, create)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a database file")
    if not create and not path.exists():
        return
    target, uri = (str(path), False) if create else (f"{path.resolve().as_uri()}?mode=ro", True)
    try:
        with closing(sqlite3.connect(target, timeout=PROBE_TIMEOUT_S, uri=uri)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as err:
        raise ValueError(f"{path}: {err}") from None


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
def quick_store(uri: str) -> Iterator[Store]:
    """A store for a command that must not hang on one that is gone (the report's upload):
    a server is asked first, within :data:`PROBE_TIMEOUT_S`, and MLflow's HTTP retries are
    cut short while the store is used."""
    from vaesweep.tracking.mlflow_client import quick_http

    with quick_http():
        if uri.partition("://")[0].lower() in ("http", "https"):
            try:
                _probe(uri)
            except OSError as err:
                why = getattr(err, "reason", None) or err
                raise ConnectionError(f"no server answers at {uri}: {why}") from None
        yield open_store(uri)


def unreachable(uri: str, err: Exception) -> UserError:
    first = f"{type(err).__name__}: {err}".splitlines()[0]
    if any(m in first for m in ("Max retries exceeded", "NewConnectionError", "urlopen error")):
        first = "no server answers there"
    first = first if len(first) <= 200 else first[:200] + "..."
    return UserError(
        f"tracker=mlflow cannot use the store {uri} ({first}); start the server or set "
        "tracker.mlflow.tracking_uri to one that works"
    )


def retry(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
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
