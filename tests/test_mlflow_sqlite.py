"""The direct SQLite writer against MLflow's own client: the same calls on two stores that
MLflow created leave the same rows in every table and the same artifact files, and MLflow
reads the directly written store back; which stores are written directly, and what is left
to the client."""

from __future__ import annotations

import io
import math
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from vaesweep.config.tracker import MlflowConfig
from vaesweep.errors import ConfigError
from vaesweep.tracking.mlflow_client import ClientStore, create_sqlite_store
from vaesweep.tracking.mlflow_files import NotDirect, local_folder
from vaesweep.tracking.mlflow_sqlite import VERIFIED_REVISIONS, SqliteStore, direct_store
from vaesweep.tracking.mlflow_store import Store, artifact_location, open_store

#: Columns that hold the moment of a call (differ between two stores written a moment apart).
_CLOCK = {"start_time", "end_time", "creation_time", "last_update_time", "deleted_time"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new store, as MLflow's client creates it (copied for each test: 1.5 s saved)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    create_sqlite_store(path)
    return path


def _store_file(template: Path, folder: Path) -> str:
    folder.mkdir(parents=True)
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _script(store: Store, files: Path) -> dict[str, Any]:
    """What a sweep's runs do to a store, and more: every call of the interface, with NaN,
    infinities, repeated points and steps out of order."""
    exp = store.experiment_id("exp", artifact_location(store.uri, "exp"))
    assert store.experiment_id("exp", None) == exp  # found, not created again
    parent = store.create_run(exp, {"status": "running", "sweep": "s"}, "s")
    run = store.create_run(exp, {"mlflow.parentRunId": parent, "status": "running"}, "beta=0.1")
    store.log_batch(run, params=[("train.lr", "0.001"), ("beta", "0.1")], tags=[("a", "1")])
    store.log_batch(run, params=[("beta", "0.1")])  # the same value again: no change
    # Values longer than MLflow takes are cut to its limits (6,000 and 8,000 characters).
    store.log_batch(parent, params=[("long", "p" * 7000)], tags=[("long", "t" * 9000)])
    points = [
        ("train/loss", 2.0, 1000, 10),
        ("train/kl", math.nan, 1000, 10),
        ("train/x", math.inf, 1000, 10),
        ("train/y", -math.inf, 1000, 10),
        ("train/loss", 1.5, 1001, 20),
        ("train/loss", 1.5, 1001, 20),  # a repeated point is stored once
        ("train/loss", 9.0, 999, 5),  # an older step: latest_metrics keeps step 20
        ("train/kl", 0.5, 1002, 20),
        ("train/epoch", 1.0, 1000, 10),
        ("train/epoch", 2.0, 1001, 20),
    ]
    store.log_batch(run, metrics=points[:4])
    store.log_batch(run, metrics=points[4:], tags=[("a", "2"), ("status", "done")])
    store.log_image(run, "samples", np.arange(8 * 12 * 3, dtype=np.uint8).reshape(8, 12, 3), 20)
    store.log_image(run, "val/recon", np.full((300, 40), 7, np.uint8), 20)
    (files / "report").mkdir(parents=True)
    (files / "config.yaml").write_text("beta: 0.1\n")
    (files / "report" / "index.html").write_text("<html></html>")
    (files / "report" / "figures").mkdir()
    (files / "report" / "figures" / "rd.png").write_bytes(b"\x89PNG")
    store.log_artifact(run, files / "config.yaml")
    store.log_artifacts(parent, files / "report", "report")
    store.terminate(run, "KILLED")
    tags = store.reopen(run)  # a resumed run
    history = sorted(store.metric_history(run, "train/epoch"))
    store.terminate(run, "FINISHED")
    store.terminate(parent, "FINISHED")
    return {"runs": [parent, run], "tags": tags, "history": history}


def _rows(uri: str, runs: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, with run ids as their order of creation and times masked."""
    path = uri[len("sqlite:///") :]
    folder = str(Path(path).parent)
    with closing(sqlite3.connect(path)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = {}
        for table in tables:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            rows = []
            for row in db.execute(f"SELECT * FROM {table}"):
                values = []
                for column, value in zip(columns, row, strict=True):
                    if column in _CLOCK and value is not None:
                        value = "<time>"
                    elif isinstance(value, str):
                        for i, run in enumerate(runs):
                            value = value.replace(run, f"<run {i}>")
                        value = value.replace(folder, "<folder>")
                    values.append(value)
                rows.append(tuple(values))
            out[table] = sorted(rows, key=repr)
    return out


def _files(folder: Path, runs: list[str]) -> dict[str, Any]:
    """Artifact files by masked relative path: bytes, or pixels for images (whose names hold
    a moment and a random id)."""
    out: dict[str, Any] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        for i, run in enumerate(runs):
            name = name.replace(run, f"<run {i}>")
        if "+step+" in name:
            key, _, rest = name.partition("+timestamp+")
            name = key + ("+compressed" if "+compressed" in rest else "") + path.suffix
            with Image.open(path) as image:
                out[name] = (image.mode, image.size, np.asarray(image).tobytes())
        else:
            out[name] = path.read_bytes()
    return out


@pytest.mark.slow
def test_the_direct_writer_leaves_what_mlflows_client_leaves(
    template: Path, tmp_path: Path
) -> None:
    by_client = _store_file(template, tmp_path / "client")
    direct = _store_file(template, tmp_path / "direct")
    assert direct_store(direct) is not None
    client_store, direct_writer = open_store(by_client, "client"), open_store(direct, "auto")
    assert isinstance(client_store, ClientStore) and isinstance(direct_writer, SqliteStore)
    a = _script(client_store, tmp_path / "files_client")
    b = _script(direct_writer, tmp_path / "files_direct")
    a["tags"]["mlflow.parentRunId"] = b["tags"]["mlflow.parentRunId"] = "<run 0>"
    assert a["tags"] == b["tags"] and a["history"] == b["history"] == [(10, 1.0), (20, 2.0)]
    rows_a, rows_b = _rows(by_client, a["runs"]), _rows(direct, b["runs"])
    assert rows_a.keys() == rows_b.keys()
    for table in rows_a:
        assert rows_a[table] == rows_b[table], table
    assert rows_b["latest_metrics"]  # the test compares something
    files_a = _files(tmp_path / "client" / "mlartifacts", a["runs"])
    files_b = _files(tmp_path / "direct" / "mlartifacts", b["runs"])
    assert files_a == files_b
    assert any("+compressed.webp" in name for name in files_b)

    # MLflow reads the directly written store back.
    client = MlflowClient(direct)
    parent, run = b["runs"]
    got = client.get_run(run)
    assert got.info.status == "FINISHED" and got.info.run_name == "beta=0.1"
    assert got.data.params == {"train.lr": "0.001", "beta": "0.1"}
    assert got.data.tags["mlflow.parentRunId"] == parent and got.data.tags["a"] == "2"
    assert got.data.metrics["train/loss"] == 1.5 and got.data.metrics["train/kl"] == 0.5
    assert math.isnan(
        next(m.value for m in client.get_metric_history(run, "train/kl") if m.step == 10)
    )
    history = client.get_metric_history(run, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(5, 9.0), (10, 2.0), (20, 1.5)]
    assert [a.path for a in client.list_artifacts(parent, "report")] == [
        "report/figures",
        "report/index.html",
    ]


@pytest.mark.slow
def test_the_installed_mlflow_makes_a_store_that_is_written_directly(template: Path) -> None:
    """Fails when a new MLflow changes the schema: run this file against it, then add its
    revision to VERIFIED_REVISIONS (until then every store goes through MLflow's client)."""
    with closing(sqlite3.connect(template)) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision in VERIFIED_REVISIONS, f"MLflow's schema {revision} is not verified"
    assert direct_store(f"sqlite:///{template}") == template


def _changed(template: Path, tmp_path: Path, sql: str) -> str:
    uri = _store_file(template, tmp_path / "changed")
    with closing(sqlite3.connect(uri[len("sqlite:///") :])) as db:
        db.execute(sql)
        db.commit()
    return uri


@pytest.mark.slow
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE alembic_version SET version_num = 'ffffffffffff'",
        "INSERT INTO workspaces (name) VALUES ('team')",
    ],
    ids=["another schema revision", "workspaces in use"],
)
def test_stores_it_does_not_know_go_through_mlflows_client(
    template: Path, tmp_path: Path, sql: str
) -> None:
    uri = _changed(template, tmp_path, sql)
    if "workspaces" in sql:
        with closing(sqlite3.connect(uri[len("sqlite:///") :])) as db:
            db.execute("INSERT INTO experiments (name, workspace) VALUES ('t', 'team')")
            db.commit()
    assert direct_store(uri) is None


def test_only_an_existing_sqlite_store_is_a_candidate(tmp_path: Path) -> None:
    (tmp_path / "text.db").write_text("not a database\n")
    (tmp_path / "folder.db").mkdir()
    with closing(sqlite3.connect(tmp_path / "other.db")) as db:  # another program's database
        db.execute("CREATE TABLE t (x)")
    for uri in (
        f"sqlite:///{tmp_path / 'missing.db'}",
        f"sqlite:///{tmp_path / 'text.db'}",
        f"sqlite:///{tmp_path / 'folder.db'}",
        f"sqlite:///{tmp_path / 'other.db'}",
        "http://localhost:5000",
        "postgresql://u@h/db",
        str(tmp_path),
        "sqlite:///",
    ):
        assert direct_store(uri) is None, uri


@pytest.mark.slow
def test_workspaces_switched_on_leave_the_store_to_mlflow(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert direct_store(f"sqlite:///{template}") is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "setup",
    [
        lambda s: s._db.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
            "VALUES ('x', 's3://bucket/x', 'active')"
        ),
        lambda s: s._db.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
            "VALUES ('x', 'file:///tmp/x', 'deleted')"
        ),
    ],
    ids=["artifacts in the cloud", "a deleted experiment"],
)
def test_experiments_it_cannot_handle_are_refused_before_anything_is_written(
    template: Path, tmp_path: Path, setup: Callable[[SqliteStore], Any]
) -> None:
    uri = _store_file(template, tmp_path / "s")
    store = SqliteStore(Path(uri[len("sqlite:///") :]), uri)
    setup(store)
    before = _rows(uri, [])
    with pytest.raises(NotDirect):
        store.experiment_id("x", None)
    assert _rows(uri, []) == before


def test_local_artifact_folders() -> None:
    assert local_folder("file:///tmp/a%20b/artifacts") == Path("/tmp/a b/artifacts")
    assert local_folder("/tmp/x") == Path("/tmp/x")
    for remote in ("s3://bucket/x", "mlflow-artifacts:/1/x", "http://h/x", "", "file://host/x"):
        with pytest.raises(NotDirect):
            local_folder(remote)


def test_the_writer_is_a_checked_setting() -> None:
    assert MlflowConfig().writer == "auto"
    with pytest.raises(
        ConfigError, match=r"tracker.mlflow.writer='sql' is invalid: must be one of auto"
    ):
        MlflowConfig(writer="sql")


@pytest.mark.slow
def test_mlflows_server_serves_a_directly_written_run(template: Path, tmp_path: Path) -> None:
    """What the UI asks the server for (a run, a metric's history, the images panel's files,
    one image), from a store written directly."""
    import json
    import urllib.parse
    import urllib.request

    from tracker_faults import mlflow_server

    folder = tmp_path / "server"
    folder.mkdir()
    shutil.copy(template, folder / "server.db")  # the store `mlflow_server` serves
    uri = f"sqlite:///{folder / 'server.db'}"
    store = open_store(uri)
    assert isinstance(store, SqliteStore)
    exp = store.experiment_id("ui", artifact_location(uri, "ui"))
    run = store.create_run(exp, {"status": "running"}, "beta=0.1")
    store.log_batch(run, params=[("beta", "0.1")])
    store.log_batch(run, metrics=[("val/kl", 3.0, 1000, 10), ("val/kl", 2.0, 1001, 20)])
    picture = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    store.log_image(run, "samples", picture, 20)
    store.terminate(run, "FINISHED")

    with mlflow_server(folder) as server:

        def get(route: str, **query: str) -> bytes:
            url = f"{server.uri}{route}?{urllib.parse.urlencode(query)}"
            with urllib.request.urlopen(url, timeout=120) as answer:  # a busy machine
                return bytes(answer.read())

        got = json.loads(get("/api/2.0/mlflow/runs/get", run_id=run))["run"]
        assert got["info"]["status"] == "FINISHED" and got["info"]["run_name"] == "beta=0.1"
        assert got["data"]["params"] == [{"key": "beta", "value": "0.1"}]
        assert {"key": "mlflow.loggedImages", "value": "True"} in got["data"]["tags"]
        history = json.loads(
            get("/api/2.0/mlflow/metrics/get-history", run_id=run, metric_key="val/kl")
        )["metrics"]
        assert sorted((m["step"], m["value"]) for m in history) == [(10, 3.0), (20, 2.0)]
        files = json.loads(get("/api/2.0/mlflow/artifacts/list", run_id=run, path="images"))
        names = sorted(f["path"] for f in files["files"])
        (png_name,) = [n for n in names if n.endswith(".png")]
        assert len(names) == 2 and png_name.replace(".png", "+compressed.webp") in names
        png = get("/get-artifact", path=png_name, run_uuid=run)
        with Image.open(io.BytesIO(png)) as image:
            assert np.array_equal(np.asarray(image), picture)


@pytest.mark.slow
@pytest.mark.parametrize(
    "batch",
    [
        {"metrics": [("a/../b", 1.0, 0, 0)]},
        {"metrics": [("/abs", 1.0, 0, 0)]},
        {"params": [("p$", "1")]},
        {"tags": [("t" * 251, "1")]},
    ],
    ids=["not unique", "absolute", "a character", "a long name"],
)
def test_the_direct_writer_refuses_what_mlflows_client_refuses(
    template: Path, tmp_path: Path, batch: dict[str, Any]
) -> None:
    stores = []
    for name, writer in (("client", "client"), ("direct", "auto")):
        uri = _store_file(template, tmp_path / name)
        store = open_store(uri, writer)
        exp = store.experiment_id("e", artifact_location(uri, "e"))
        stores.append((store, store.create_run(exp, {}, "r")))
    for store, run in stores:
        with pytest.raises(Exception, match=r"(?i)invalid|does not take|at most|exceed"):
            store.log_batch(run, **batch)


@pytest.mark.slow
def test_a_run_in_an_experiment_with_artifacts_elsewhere_is_left_to_the_client(
    template: Path, tmp_path: Path
) -> None:
    """A sweep's experiment (made through MLflow's client, say with an S3 artifact root):
    creating its runs directly is refused before any row is written."""
    uri = _store_file(template, tmp_path / "s")
    store = SqliteStore(Path(uri[len("sqlite:///") :]), uri)
    store._db.execute(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
        "VALUES ('x', 's3://bucket/x', 'active')"
    )
    (exp,) = store._read("SELECT experiment_id FROM experiments WHERE name = 'x'")[0]
    before = _rows(uri, [])
    with pytest.raises(NotDirect):
        store.create_run(str(exp), {"status": "running"}, "r")
    assert _rows(uri, []) == before
    store.create_run("0", {}, "r")  # the store is usable after the refusal
