"""Where MLflow logs: the store's URI, a client for it, the experiment, the light check before
anything trains, and calls retried while SQLite reports a lock.

Nothing here imports MLflow at module level: :func:`check_store` runs in the training process,
which never imports it (a local store is checked on disk, a server by one HTTP request).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from vaesweep.config.tracker import MlflowConfig
from vaesweep.errors import UserError
from vaesweep.record.layout import MLFLOW_ARTIFACTS_DIR, MLFLOW_STORE, outputs_root

_T = TypeVar("_T")


def default_uri(root: Path) -> str:
    return f"sqlite:///{(Path(root) / MLFLOW_STORE).expanduser().resolve()}"


def resolve_uri(cfg: MlflowConfig, root: Path | None) -> str:
    """The store's URI: ``tracker.mlflow.tracking_uri``, else ``<outputs>/mlflow.db``."""
    return cfg.tracking_uri or default_uri(root or outputs_root())


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a new local SQLite store is created whole first
    (:func:`create_sqlite_store`)."""
    from mlflow.tracking import MlflowClient

    # After the import, which sets mlflow's own level: its INFO lines (schema migrations)
    # are noise in a run's log.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow prints a run's and its experiment's links at each run's end on a server store:
    # two lines per run of a sweep on the terminal. The README says how to open the store.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :]).expanduser()
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


#: The tracker process's clients by URI, shared by the runs it logs: opening a SQLite store
#: imports the SQLAlchemy store and checks its schema, about 1 s of CPU.
_CLIENTS: dict[str, Any] = {}


def shared_client(uri: str) -> Any:
    if uri not in _CLIENTS:
        _CLIENTS[uri] = client(uri)
    return _CLIENTS[uri]


def experiment_id(mlflow_client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if needed (by whichever process comes first)."""
    found = retry(mlflow_client.get_experiment_by_name, name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            retry(mlflow_client.restore_experiment, found.experiment_id)
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        slug = re.sub(r"[^\w.=,+-]+", "_", name).strip("_") or "experiment"
        location = (Path(uri[len("sqlite:///") :]).parent / MLFLOW_ARTIFACTS_DIR / slug).as_uri()
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=location))
    except Exception:
        found = retry(mlflow_client.get_experiment_by_name, name)
        if found is None:
            raise
        return str(found.experiment_id)


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
            with _quick_http():
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
def quick_client(uri: str) -> Iterator[Any]:
    """A client for a command that must not hang on a store that is gone (the report's
    upload): a server is asked first, within :data:`PROBE_TIMEOUT_S`, and MLflow's HTTP
    retries are cut short while the client is used."""
    with _quick_http():
        if uri.partition("://")[0].lower() in ("http", "https"):
            try:
                _probe(uri)
            except OSError as err:
                why = getattr(err, "reason", None) or err
                raise ConnectionError(f"no server answers at {uri}: {why}") from None
        yield client(uri)


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
