"""MLflow's local SQLite store, written directly with :mod:`sqlite3`: no MLflow import.

MLflow's client costs a default 2-core run more than 5% of its time: its import and the
SQLAlchemy store take 1.3-2.8 s of CPU, and each logged value about 0.26 ms (one ORM object
per value). What a run logs is a handful of rows in six tables, so for a store whose schema
is one vaesweep has been checked against (:data:`VERIFIED_REVISIONS`, read from the store's
``alembic_version``) the rows are written here, as MLflow's own ``SqlAlchemyStore`` writes
them: the same columns and values, ``latest_metrics`` kept up to date, NaN and infinities
stored as MLflow stores them, the same pragmas (foreign keys, a 20 s busy timeout), one
transaction per batch; artifacts and image grids are files (:mod:`~vaesweep.tracking.mlflow_files`).
``tests/test_mlflow_sqlite.py`` checks that the rows and files equal those of MLflow's
client, call by call.

Anything else goes through MLflow's client (:mod:`vaesweep.tracking.mlflow_client`): a store
that does not exist yet (MLflow builds its schema), one of another revision (older, or newer
than the ones checked), one holding workspaces, a server, ``tracker.mlflow.writer=client``.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.tracking.mlflow_files import (
    NotDirect,
    copy_file,
    copy_folder,
    local_folder,
    write_image,
)

#: Alembic revisions (the head of MLflow's schema) whose tables this module writes:
#: ``dc11669786a5`` is MLflow 3.17's. Add one only after ``tests/test_mlflow_sqlite.py``
#: passes against the MLflow that creates it.
VERIFIED_REVISIONS = frozenset({"dc11669786a5"})
#: MLflow's name of the workspace every experiment is in unless workspaces are enabled.
DEFAULT_WORKSPACE = "default"
#: How MLflow stores infinities (SQL has none): the largest float of their sign.
_MAX_FLOAT = 1.7976931348623157e308
#: MLflow's tag of a run that holds logged images (its UI then shows an image panel).
_LOGGED_IMAGES_TAG = "mlflow.loggedImages"
_RUN_NAME_TAG = "mlflow.runName"
_USER_TAG = "mlflow.user"
#: SQLite's wait for another writer's lock, as MLflow sets it (``PRAGMA busy_timeout``).
BUSY_TIMEOUT_S = 20.0


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///<path>`` URI (None for any other URI)."""
    if not uri.startswith("sqlite:///") or not uri[len("sqlite:///") :].strip():
        return None
    return Path(uri[len("sqlite:///") :]).expanduser()


def direct_store(uri: str) -> Path | None:
    """The store's file when its rows may be written here, else None.

    That is: a ``sqlite:///`` store that exists, whose schema revision is verified, without
    workspaces (neither enabled by ``MLFLOW_ENABLE_WORKSPACES`` nor used by an experiment).
    Opened read-only; a file that is not such a store (damaged, locked past the timeout,
    another program's database) is None too, and MLflow's client says what is wrong with it.
    """
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return None
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("true", "1"):
        return None
    try:
        target = f"{path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(target, uri=True, timeout=BUSY_TIMEOUT_S)) as db:
            (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
            if revision not in VERIFIED_REVISIONS:
                return None
            other = db.execute(
                "SELECT 1 FROM experiments WHERE workspace != ? LIMIT 1", (DEFAULT_WORKSPACE,)
            ).fetchone()
    except (sqlite3.Error, TypeError, ValueError):
        return None
    return None if other else path


#: What MLflow takes as a metric, param or tag name (on POSIX), and its longest name.
_NAME = re.compile(r"[/\w.\- :]*")
_MAX_NAME = 250
#: MLflow's longest param and tag values.
_MAX_VALUE = {"param": 6000, "tag": 8000}


def check_name(kind: str, name: str) -> None:
    """Refuse a name MLflow's client refuses (its characters, a path that is not unique such
    as ``a/../b``, more than 250 characters), so both writers take the same names."""
    normal = posixpath.normpath(name)
    unique = normal == name and normal != "." and not normal.startswith(("..", "/"))
    if not (_NAME.fullmatch(name) and unique and len(name) <= _MAX_NAME):
        raise ValueError(
            f"MLflow does not take the {kind} name {name!r}: names may only contain "
            "alphanumerics, underscores, dashes, periods, spaces, colons and slashes, as a "
            f"normalised relative path of at most {_MAX_NAME} characters"
        )


def _fitted(kind: str, name: str, value: str) -> str:
    """``value`` cut to MLflow's longest (as its client does, unless
    ``MLFLOW_TRUNCATE_LONG_VALUES`` is false: then refused, as there)."""
    limit = _MAX_VALUE[kind]
    if len(value) <= limit:
        return value
    if os.environ.get("MLFLOW_TRUNCATE_LONG_VALUES", "true").strip().lower() in ("false", "0"):
        raise ValueError(f"MLflow takes {kind} values of at most {limit} characters; {name!r} "
                         f"has {len(value)}")  # fmt: skip
    return value[:limit]


def _now_ms() -> int:
    return int(time.time() * 1000)


def stored_value(value: float) -> tuple[float, int]:
    """``(value, is_nan)`` as MLflow stores a metric: NaN as 0 flagged, infinities clipped."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (_MAX_FLOAT if value > 0 else -_MAX_FLOAT), 0
    return float(value), 0


class SqliteStore:
    """One store file; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path, uri: str) -> None:
        self.path, self.uri = Path(path), uri
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._db.execute("PRAGMA case_sensitive_like = true")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking SQLite's write lock at once (waits up to the busy
        timeout for another process's)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT may leave it open
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ experiments

    def experiment_id(self, name: str, location: str | None) -> str:
        """The id of the active experiment ``name``, created (at ``location``) if missing.

        An experiment that is deleted (MLflow restores its runs too) or keeps its artifacts
        elsewhere than on this disk is left to MLflow's client (:class:`NotDirect`).
        """
        sql = "SELECT experiment_id, lifecycle_stage, artifact_location FROM experiments "
        sql += "WHERE workspace = ? AND name = ?"
        for _ in range(2):
            found = self._read(sql, (DEFAULT_WORKSPACE, name))
            if found:
                exp, stage, artifacts = found[0]
                if stage != "active":
                    raise NotDirect(f"the experiment {name!r} is deleted")
                local_folder(artifacts or "")
                return str(exp)
            if location is None:
                raise NotDirect("a new experiment without an artifact location")
            now = _now_ms()
            try:
                with self._write() as db:
                    db.execute(
                        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                        "creation_time, last_update_time, workspace) VALUES (?, ?, ?, ?, ?, ?)",
                        (name, location, "active", now, now, DEFAULT_WORKSPACE),
                    )
            except sqlite3.IntegrityError:
                pass  # another process created it meanwhile: read its id
        raise AssertionError(f"the experiment {name!r} was neither found nor created")

    # ------------------------------------------------------------------ runs

    def create_run(self, experiment_id: str, tags: dict[str, str], name: str) -> str:
        """A new RUNNING run (as ``SqlAlchemyStore.create_run``); returns its id."""
        run_id = uuid.uuid4().hex
        tags = dict(tags)
        if tags.get(_RUN_NAME_TAG, name) != name:
            raise ValueError(f"the run name {name!r} and its tag {_RUN_NAME_TAG} differ")
        tags.setdefault(_RUN_NAME_TAG, name)
        with self._write() as db:
            found = db.execute(
                "SELECT artifact_location, lifecycle_stage FROM experiments "
                "WHERE experiment_id = ?",
                (int(experiment_id),),
            ).fetchone()
            if found is None or found[1] != "active":
                raise ValueError(f"the experiment {experiment_id} is not an active experiment")
            local_folder(found[0] or "")  # else NotDirect: its artifacts are elsewhere
            artifact_uri = f"{found[0].rstrip('/')}/{run_id}/artifacts"
            db.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id, deleted_time) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
                (run_id, name, tags.get(_USER_TAG, "unknown"), _now_ms(), artifact_uri,
                 int(experiment_id)),
            )  # fmt: skip
            self._set_tags(db, run_id, tags.items())
        return run_id

    def reopen(self, run_id: str) -> dict[str, str] | None:
        """Mark a run RUNNING again (a resumed run) and return its tags; None if the store
        has no active run ``run_id``."""
        with self._write() as db:
            found = db.execute(
                "SELECT lifecycle_stage, artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
            if found is None or found[0] != "active":
                return None
            local_folder(found[1] or "")
            db.execute("UPDATE runs SET status = 'RUNNING' WHERE run_uuid = ?", (run_id,))
            rows = db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))
            return {str(k): str(v) for k, v in rows.fetchall()}

    def terminate(self, run_id: str, status: str) -> None:
        """End a run with MLflow's ``status`` (FINISHED, FAILED, KILLED) at this moment."""
        with self._write() as db:
            self._active(db, run_id)
            db.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                (status, _now_ms(), run_id),
            )

    def _active(self, db: sqlite3.Connection, run_id: str) -> None:
        found = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,))
        row = found.fetchone()
        if row is None:
            raise ValueError(f"the store has no run {run_id}")
        if row[0] != "active":
            raise ValueError(f"the run {run_id} must be in the 'active' state, not {row[0]!r}")

    # ------------------------------------------------------------------ values

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        params: Sequence[tuple[str, str]] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Metrics ``(key, value, timestamp ms, step)``, params and tags in one transaction."""
        for key, *_ in metrics:
            check_name("metric", key)
        for kind, pairs in (("param", params), ("tag", tags)):
            for key, _ in pairs:
                check_name(kind, key)
        params = [(k, _fitted("param", k, v)) for k, v in params]
        tags = [(k, _fitted("tag", k, v)) for k, v in tags]
        with self._write() as db:
            self._active(db, run_id)
            if params:
                self._log_params(db, run_id, params)
            if metrics:
                self._log_metrics(db, run_id, metrics)
            if tags:
                self._set_tags(db, run_id, tags)

    @staticmethod
    def _log_params(db: sqlite3.Connection, run_id: str, params: Sequence[tuple[str, str]]) -> None:
        rows = db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
        old = dict(rows.fetchall())
        for key, value in params:
            if key in old and old[key] != value:
                raise ValueError(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{old[key]}' for run ID='{run_id}'. Attempted logging "
                    f"new value '{value}'."
                )
        new = {k: v for k, v in params if k not in old}
        db.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(k, v, run_id) for k, v in new.items()],
        )

    @staticmethod
    def _log_metrics(
        db: sqlite3.Connection, run_id: str, metrics: Sequence[tuple[str, float, int, int]]
    ) -> None:
        rows = [(key, *stored_value(value), int(ts), int(step)) for key, value, ts, step in metrics]
        db.executemany(
            "INSERT OR IGNORE INTO metrics (key, value, is_nan, timestamp, step, run_uuid) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(*row, run_id) for row in rows],
        )
        # latest_metrics holds each key's most recent point by (step, timestamp, value).
        newest: dict[str, tuple[float, int, int, int]] = {}
        for key, value, is_nan, ts, step in rows:
            old = newest.get(key)
            if old is None or (step, ts, value) > (old[3], old[2], old[0]):
                newest[key] = (value, is_nan, ts, step)
        found = db.execute(
            "SELECT key, value, timestamp, step FROM latest_metrics WHERE run_uuid = ?", (run_id,)
        ).fetchall()
        stored = {key: (step, ts, value) for key, value, ts, step in found}
        db.executemany(
            "INSERT OR REPLACE INTO latest_metrics (key, value, is_nan, timestamp, step, "
            "run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (key, value, is_nan, ts, step, run_id)
                for key, (value, is_nan, ts, step) in newest.items()
                if key not in stored or (step, ts, value) > stored[key]
            ],
        )

    @staticmethod
    def _set_tags(db: sqlite3.Connection, run_id: str, tags: Iterable[tuple[str, str]]) -> None:
        for key, value in tags:
            if key == _RUN_NAME_TAG:  # MLflow keeps the run's name and this tag equal
                db.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (value, run_id))
            db.execute(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                (key, value, run_id),
            )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` logged for ``key`` (NaN where MLflow flags one)."""
        rows = self._read(
            "SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? AND key = ? "
            "ORDER BY timestamp, step, value",
            (run_id, key),
        )
        return [(int(step), math.nan if is_nan else float(value)) for step, value, is_nan in rows]

    # ------------------------------------------------------------------ artifacts

    def artifact_folder(self, run_id: str) -> Path:
        found = self._read("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
        if not found:
            raise ValueError(f"the store has no run {run_id}")
        return local_folder(found[0][0] or "")

    def log_artifact(self, run_id: str, path: Path, artifact_path: str = "") -> None:
        copy_file(Path(path), self.artifact_folder(run_id) / artifact_path)

    def log_artifacts(self, run_id: str, source: Path, artifact_path: str) -> None:
        copy_folder(Path(source), self.artifact_folder(run_id) / artifact_path)

    def log_image(self, run_id: str, key: str, image: np.ndarray, step: int) -> None:
        """A grid at ``step`` (:func:`~vaesweep.tracking.mlflow_files.write_image`), then
        MLflow's tag of a run with images."""
        write_image(self.artifact_folder(run_id), key, image, step)
        self.log_batch(run_id, tags=[(_LOGGED_IMAGES_TAG, "True")])
