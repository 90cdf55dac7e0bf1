"""MLflow in its own process: the wire format, the light check before training, a training
process that never imports mlflow, and the faults of the child (a store that fails, a process
that dies) warning once while the run goes on."""

from __future__ import annotations

import io
import json
import logging
import math
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaesweep.config.tracker import MlflowConfig
from vaesweep.errors import UserError
from vaesweep.tracking import RunInfo, Trackers
from vaesweep.tracking.fanout import _mlflow
from vaesweep.tracking.mlflow_store import check_store
from vaesweep.tracking.process import (
    close_all,
    images_from_wire,
    images_to_wire,
    info_from_json,
    info_to_json,
    read_message,
    write_message,
)


def test_messages_carry_rows_and_images_exactly() -> None:
    grid = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    meta, blobs = images_to_wire({"samples": grid})
    row = {"epoch": 1, "step": 7, "split": "val", "kl": 0.1 + 0.2, "nll": math.nan}
    row["mse"] = np.float32(0.5)  # numpy scalars travel as numbers
    pipe = io.BytesIO()
    write_message(pipe, {"call": "on_epoch", "rows": [row], "images": meta}, blobs)
    write_message(pipe, {"call": "on_end"})
    pipe.seek(0)
    header, got = read_message(pipe)
    (back,) = header["rows"]
    assert back["kl"] == 0.1 + 0.2 and math.isnan(back["nll"]) and back["mse"] == 0.5
    assert back["step"] == 7 and isinstance(back["step"], int)
    assert np.array_equal(images_from_wire(header["images"], got)["samples"], grid)
    assert read_message(pipe)[0] == {"call": "on_end"}
    with pytest.raises(EOFError):
        read_message(pipe)


def test_run_info_round_trips(tmp_path: Path) -> None:
    info = RunInfo(
        run_dir=tmp_path / "r",
        name="beta=0.1",
        config={"beta": 0.1, "train": {"lr": 0.001, "x": [1, 2]}},
        hparams={"beta": 0.1},
        hparam_domains={"beta": [0.1, 1.0]},
        sweep_dir=tmp_path,
        sweep_name="s",
        host="h",
        resumed_step=12,
        has_iwae=True,
        outputs_root=tmp_path,
    )
    assert info_from_json(json.loads(json.dumps(info_to_json(info)))) == info


def test_the_store_check_before_training_is_light(tmp_path: Path) -> None:
    """No mlflow import in the command: the local store's folder is all it checks."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from vaesweep.bridge import compose
        from vaesweep.tracking import session
        config = compose.compose(["tracker=mlflow"])
        session.preflight([config.tracker], Path({str(tmp_path / "out")!r}))
        print("mlflow" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "out").is_dir()


def test_a_malformed_sqlite_uri_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot use the store sqlite://x .*sqlite:///"):
        check_store(MlflowConfig(tracking_uri="sqlite://x"), tmp_path)


def test_a_sqlite_store_that_is_no_database_is_refused_before_training(tmp_path: Path) -> None:
    """A folder, or a file of something else, where the store's file should be passed the
    check: the run trained, then MLflow retried for two minutes and the tracker was lost."""
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "text.db").write_text("not a database\n")
    for name, why in (("folder.db", "is a folder"), ("text.db", "file is not a database")):
        with pytest.raises(UserError, match=why):
            check_store(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / name}"), tmp_path)
    check_store(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'new.db'}"), tmp_path)
    check_store(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'new.db'}"), tmp_path)


_DRIVE = """
import json, math, sys
from pathlib import Path
import numpy as np
from vaesweep.config.tracker import MlflowConfig
from vaesweep.tracking import RunInfo, Trackers
from vaesweep.tracking.fanout import _mlflow

root = Path(sys.argv[1])
route = _mlflow(MlflowConfig(tracking_uri=sys.argv[2]))
trackers = Trackers([route], image_every=1)
info = RunInfo(run_dir=root, name="r", config={"beta": 0.5}, hparams={"beta": 0.5})
trackers.start(info)
for epoch in (1, 2, 3):
    kl = math.nan if epoch == 2 else 1.0 / epoch
    trackers.epoch([{"epoch": epoch, "step": 10 * epoch, "split": "val", "kl": kl}])
    trackers.images(epoch, 10 * epoch, {"samples": np.full((8, 12, 3), epoch, np.uint8)})
trackers.end("completed", {"status": "completed", "step": 30})
print(json.dumps(["mlflow" in sys.modules, type(route.inner).__name__]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("existing", "writer"),
    [(None, "ProcessTracker"), ("store", "MlflowTracker"), ("deleted", "ProcessTracker")],
    ids=[
        "a new store: MLflow's client creates it",
        "an existing store: written directly",
        "a deleted experiment: MLflow's client restores it",
    ],
)
def test_the_training_process_never_imports_mlflow(
    tmp_path: Path, existing: str | None, writer: str
) -> None:
    from mlflow.tracking import MlflowClient

    from vaesweep.tracking.mlflow import RUNS_EXPERIMENT

    store = f"sqlite:///{tmp_path / 'store.db'}"
    if existing:
        MlflowClient(store).search_experiments()  # creates the store
    if existing == "deleted":
        old = MlflowClient(store).create_experiment(RUNS_EXPERIMENT)
        MlflowClient(store).delete_experiment(old)
    out = subprocess.run(
        [sys.executable, "-c", _DRIVE, str(tmp_path), store],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == [False, writer]
    run_id = json.loads((tmp_path / "mlflow.json").read_text())["run_id"]
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"beta": "0.5"}
    history = sorted(client.get_metric_history(run_id, "val/kl"), key=lambda m: m.step)
    assert [m.step for m in history] == [10, 20, 30]
    assert history[0].value == 1.0 and math.isnan(history[1].value)
    images = {a.path for a in client.list_artifacts(run_id, "images")}
    assert len([p for p in images if p.endswith(".png")]) == 3


def _info(tmp_path: Path) -> RunInfo:
    return RunInfo(run_dir=tmp_path, name="r", config={}, hparams={"beta": 1.0})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.slow
def test_a_tracker_that_fails_in_the_child_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")  # the run's mlflow.json cannot be written below it
    cfg = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'store.db'}")
    trackers = Trackers([_mlflow(cfg)])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.start(_info(tmp_path / "file" / "run"))
        for epoch in (1, 2):
            trackers.epoch([{"epoch": epoch, "step": epoch, "split": "train", "kl": 1.0}])
        trackers.end("completed", {"status": "completed"})
    (warning,) = _warnings(caplog)
    assert "tracker mlflow failed in on_start (NotADirectoryError" in warning
    assert "record is intact" in warning


@pytest.mark.slow
def test_a_tracker_process_that_dies_warns_once_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'store.db'}")
    tracker = _mlflow(cfg)
    trackers = Trackers([tracker])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.start(_info(tmp_path))
        handoff = tmp_path / "mlflow.json"
        trackers.epoch([{"epoch": 1, "step": 1, "split": "train", "kl": 1.0}])
        # on_start has been answered once the run's id is in its directory.
        while not handoff.exists():
            trackers._workers[0].thread.join(0.05)
        tracker.inner._child.proc.kill()  # type: ignore[attr-defined]
        trackers.epoch([{"epoch": 2, "step": 2, "split": "train", "kl": 1.0}])
        trackers.end("completed", {"status": "completed"})
    (warning,) = _warnings(caplog)
    assert "tracker mlflow failed" in warning and "exited" in warning


def test_the_tracker_process_exits_at_once_with_what_it_printed() -> None:
    """It skips the interpreter's teardown (about 0.9 s after MLflow's import) but still
    flushes what it wrote and keeps its exit code."""
    code = (
        "import sys; from vaesweep.tracking.worker import exit_now; "
        "sys.stdout.write('replies'); sys.stderr.write('warning'); exit_now(3)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "replies", "warning")


@pytest.mark.slow
def test_the_tracker_process_logs_without_pandas_and_exits_cleanly(tmp_path: Path) -> None:
    """MLflow in the child never loads pandas (hidden there: it only backs MLflow's optional
    pandas datasets), yet every call is stored; the child exits with code 0 at the end."""
    store = tmp_path / "store.db"
    tracker = _mlflow(MlflowConfig(tracking_uri=f"sqlite:///{store}"))
    tracker.prepare()
    tracker.on_start(_info(tmp_path))
    rows = [{"epoch": e, "step": 10 * e, "split": "val", "kl": 0.5 * e} for e in (1, 2)]
    tracker.on_epoch(rows)
    tracker.on_images(2, 20, {"samples": np.zeros((8, 8, 1), dtype=np.uint8)})
    tracker.on_end("completed", {"status": "completed"})
    proc = tracker.inner._child.proc  # type: ignore[attr-defined]
    # Read while the child is alive and idle: every shared library it has loaded.
    libraries = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "mlflow" in libraries or "sqlalchemy" in libraries or "_sqlite3" in libraries
    assert "/pandas/" not in libraries
    tracker.close(10.0)  # the run is done with it; it waits, idle, for a next run
    close_all()  # what this process does at exit
    assert proc.returncode == 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    run_id = json.loads((tmp_path / "mlflow.json").read_text())["run_id"]
    history = client.get_metric_history(run_id, "val/kl")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 1.0)]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert any(a.path.startswith("images") for a in client.list_artifacts(run_id))


def test_the_tracker_process_ends_quietly_when_the_run_is_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run killed with SIGKILL left its tracker process writing a reply into a closed pipe:
    a BrokenPipeError traceback on the terminal."""
    from vaesweep.tracking import worker
    from vaesweep.tracking.process import write_message

    class Quiet:
        def prepare(self) -> None: ...

        def on_epoch(self, rows: list[dict[str, Any]]) -> None: ...

    class Closed(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(worker.TRACKERS, "quiet", lambda config, hint: Quiet())
    requests = io.BytesIO()
    write_message(requests, {"call": "on_epoch", "id": "1", "rows": []})
    requests.seek(0)
    worker.serve({"tracker": "quiet"}, requests, Closed())  # returns, raises nothing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_run_does_not_wait_for_a_tracker_whose_server_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MLflow retries a server that does not answer for minutes; the tracker's process says so
    before its reply, and the run's end stops waiting (it waited the whole 120 s)."""
    gone = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    trackers = Trackers([_mlflow(MlflowConfig(tracking_uri=gone))])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.start(_info(tmp_path))
        trackers.epoch([{"epoch": 1, "step": 1, "split": "train", "kl": 1.0}])
        trackers.end("completed", {"status": "completed"}, wait_s=60)
    (warning,) = _warnings(caplog)
    assert "tracker mlflow cannot reach its store (NewConnectionError" in warning, warning
    assert "Connection refused" in warning and "does not wait for it" in warning


def test_a_retry_notice_says_the_server_is_gone_not_that_it_is_busy() -> None:
    """A refused connection or a proxy's 503 is a server that is gone (the run's end does
    not wait for it); a 429 is a server that is there, throttling (the run waits)."""
    from urllib3.exceptions import NewConnectionError
    from urllib3.util.retry import RequestHistory, Retry

    from vaesweep.tracking.process import read_message
    from vaesweep.tracking.worker import RetryNotices

    def notice(last: RequestHistory) -> dict[str, Any] | None:
        replies = io.BytesIO()
        notices = RetryNotices(replies)
        notices.sent = False  # a request is being answered
        record = logging.LogRecord(
            "urllib3.util.retry", logging.DEBUG, __file__, 1,
            "Incremented Retry for (url='%s'): %r", ("/api", Retry(history=(last,))), None,
        )  # fmt: skip
        notices.handle(record)
        notices.handle(record)  # one notice per request
        replies.seek(0)
        if not replies.getvalue():
            return None
        header, _ = read_message(replies)
        assert replies.read() == b""
        return header

    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    gone = notice(RequestHistory("POST", "/api", refused, None, None))
    assert gone is not None and gone["retrying"].startswith("NewConnectionError: ")
    proxy = notice(RequestHistory("POST", "/api/2.0/mlflow/runs/log-batch", None, 503, None))
    assert proxy == {"retrying": "the server answers 503 to POST /api/2.0/mlflow/runs/log-batch"}
    assert notice(RequestHistory("POST", "/api", None, 429, None)) is None


def test_the_report_upload_to_a_server_that_is_gone_is_one_line_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upload asks the server first (MLflow's own retries took minutes to say so)."""
    from vaesweep.tracking.session import upload_report

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    handoff = {"tracking_uri": uri, "experiment_id": "1", "run_id": "0" * 32}
    (tmp_path / "mlflow.json").write_text(json.dumps(handoff))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html></html>")
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        assert upload_report([tmp_path], tmp_path / "report") == []
    (warning,) = _warnings(caplog)
    assert f"could not upload the report to MLflow (no server answers at {uri}: " in warning


def test_a_dry_run_checks_the_store_without_writing(tmp_path: Path) -> None:
    import sqlite3

    new = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'new' / 'store.db'}")
    check_store(new, None, create=False)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "store.db"
    with sqlite3.connect(existing) as db:
        db.execute("CREATE TABLE t (x)")
    before = existing.read_bytes()
    check_store(MlflowConfig(tracking_uri=f"sqlite:///{existing}"), None, create=False)
    assert existing.read_bytes() == before and not list(tmp_path.glob("store.db-*"))
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    with pytest.raises(UserError):
        check_store(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'text.db'}"), None, False)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError):  # below a file: no folder can be made there
        check_store(MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'file' / 's.db'}"), None)


@pytest.mark.slow
def test_a_new_sqlite_store_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """MLflow builds a new store in dozens of migrations: a process killed among them (Ctrl-C
    during a first run's start) left a store no later run could open ("table ... already
    exists"). The store is now built under a temporary name and linked into place."""
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlflow.db"
    script = textwrap.dedent(
        f"""
        import os, sys
        from vaesweep.tracking import mlflow_store
        real = mlflow_store.retry
        def killed_midway(call, *args, **kwargs):  # the creation's process dies in it
            sys.stdout.write("creating\\n"); sys.stdout.flush(); os._exit(9)
        mlflow_store.retry = killed_midway
        from vaesweep.tracking.mlflow_client import client
        client("sqlite:///{store}")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9 and done.stdout == "creating\n", done.stderr
    assert not store.exists()
    assert list(tmp_path.glob(".mlflow.db.*.creating*"))  # what the killed creation left
    from vaesweep.tracking.mlflow_client import client

    client(f"sqlite:///{store}")  # the next run creates it whole, and clears what was left
    assert store.exists() and not list(tmp_path.glob(".mlflow.db.*"))
    assert [e.name for e in MlflowClient(f"sqlite:///{store}").search_experiments()]


@pytest.mark.slow
def test_mlflow_logs_a_whole_run_without_the_packages_its_process_hides(tmp_path: Path) -> None:
    """Each package the tracker's process hides (:data:`vaesweep.tracking.worker.HIDDEN`) is an
    optional import of MLflow or of what it loads: with them hidden, MLflow opens a SQL store
    (alembic, mako), logs metrics, an image and an artifact, and never loads pandas (0.6 s of
    CPU) or pygments (0.12 s, for mako's template error pages)."""
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from vaesweep.tracking.worker import HIDDEN, HiddenPackages
        sys.meta_path.insert(0, HiddenPackages(HIDDEN["mlflow"]))
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
        client = MlflowClient("sqlite:///{tmp_path / "store.db"}")
        run = client.create_run(client.create_experiment("hidden"))
        rid = run.info.run_id
        client.log_batch(rid, metrics=[Metric("val/kl", 0.5, 0, 10)], synchronous=True)
        client.log_image(rid, np.zeros((8, 8), np.uint8), key="samples", step=10, synchronous=True)
        client.log_artifact(rid, "{tmp_path / "config.yaml"}")
        client.set_terminated(rid, "FINISHED")
        import mako.exceptions  # loaded by the store's migrations
        loaded = [p for p in ("pandas", "pygments", *HIDDEN["mlflow"]) if p in sys.modules]
        print(loaded, client.get_run(rid).info.status)
        """
    )
    (tmp_path / "config.yaml").write_text("beta: 0.1\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "FINISHED"]
