"""MLflow end to end, read back with ``MlflowClient``: a sweep run by two parallel workers
into one SQLite store (nothing lost), nesting, params, tags, artifacts, the report, resume;
and that trackers never change a run's record, even when one fails mid-run."""

from __future__ import annotations

import http.server
import json
import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY, tiny_with
from mlflow.tracking import MlflowClient
from tracker_faults import (
    metrics_rows,
    mlflow_server,
    record_numbers,
    tensorboard_disk_full_at_epoch_2,
)
from typer.testing import CliRunner

from vaesweep import tensorfile
from vaesweep.bridge import compose as bridge
from vaesweep.cli import app
from vaesweep.record import contract
from vaesweep.record.contract import MLFLOW_FILE as HANDOFF_FILE
from vaesweep.run import run_job
from vaesweep.testing.fabricate import fabricate_sweep
from vaesweep.tracking.base import as_text, flatten

BETAS = ("0.1", "1")
EPOCHS = 3


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MlflowClient]]:
    """`vaesweep sweep ... tracker=[tensorboard,mlflow] --jobs 2 --no-stack`, then
    `vaesweep report`."""
    root = tmp_path_factory.mktemp("ml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("VAESWEEP_OUTPUTS", str(root / "outputs"))
        args = ["sweep", f"beta={','.join(BETAS)}", "tracker=[tensorboard,mlflow]", "--jobs", "2"]
        # Two processes writing into one store (a stack's members: test_stack_tracking).
        args.append("--no-stack")
        result = CliRunner().invoke(
            app, [*args, "--name", "ml", *tiny_with(f"train.epochs={EPOCHS}")]
        )
        assert result.exit_code == 0, result.output
        report = CliRunner().invoke(app, ["report", str(root / "outputs" / "sweeps" / "ml")])
        assert report.exit_code == 0, report.output
        assert "report logged to MLflow run" in report.output
    store = root / "outputs" / "mlflow.db"
    assert store.exists()  # the default store: sqlite:///<outputs>/mlflow.db
    yield root / "outputs" / "sweeps" / "ml", MlflowClient(f"sqlite:///{store}")


def _runs(client: MlflowClient) -> tuple[Any, list[Any]]:
    exp = client.get_experiment_by_name("ml")  # one experiment per sweep, named after it
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents[0], children


@pytest.mark.slow
def test_a_parent_run_per_sweep_and_a_child_per_run(sweep: tuple[Path, MlflowClient]) -> None:
    sweep_dir, client = sweep
    parent, children = _runs(client)
    assert parent.info.run_name == "ml" and parent.info.status == "FINISHED"
    assert parent.data.tags["status"] == "completed" and parent.data.tags["swept_keys"] == "beta"
    assert parent.data.tags["runs"] == str(len(BETAS))  # it counted tracker settings: "1"
    assert sorted(c.info.run_name for c in children) == sorted(f"beta={b}" for b in BETAS)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.tags["status"] == "completed"
        assert child.data.tags["swept_keys"] == "beta" and child.data.tags["host"]
        handoff = json.loads((sweep_dir / child.info.run_name / HANDOFF_FILE).read_text())
        assert handoff["run_id"] == child.info.run_id


@pytest.mark.slow
def test_every_epoch_of_both_parallel_runs_is_in_the_store(
    sweep: tuple[Path, MlflowClient],
) -> None:
    sweep_dir, client = sweep
    _, children = _runs(client)
    for child in children:
        rows = metrics_rows(sweep_dir / child.info.run_name)
        assert len(rows) == 2 * EPOCHS
        history: dict[str, dict[int, list[float]]] = {}
        for row in rows:
            for column, text in row.items():
                if column in ("split", "step") or text == "":
                    continue
                key = f"{row['split']}/{column}"
                if key not in history:
                    history[key] = {}
                    for m in client.get_metric_history(child.info.run_id, key):
                        history[key].setdefault(m.step, []).append(m.value)
                values = history[key].get(int(row["step"]))
                assert values is not None and len(values) == 1, (key, row["step"])
                if math.isnan(float(text)):
                    assert math.isnan(values[0])
                else:
                    assert values[0] == pytest.approx(float(text), rel=1e-12), key
        logged = set(child.data.metrics)
        assert logged - set(history) == {"final/iwae_nll"}


@pytest.mark.slow
def test_params_are_the_flattened_resolved_config(sweep: tuple[Path, MlflowClient]) -> None:
    sweep_dir, client = sweep
    _, children = _runs(client)
    for child in children:
        summary = json.loads((sweep_dir / child.info.run_name / contract.SUMMARY_FILE).read_text())
        expected = {k: as_text(v) for k, v in flatten(summary["config"]).items()}
        assert child.data.params == expected
        assert float(child.data.params["beta"]) == float(child.info.run_name.split("=")[1])


@pytest.mark.slow
def test_artifacts_hold_the_record_files_the_grids_and_the_report(
    sweep: tuple[Path, MlflowClient],
) -> None:
    _, client = sweep
    parent, children = _runs(client)
    for child in children:
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {
            contract.CONFIG_FILE,
            contract.SUMMARY_FILE,
            contract.RECONSTRUCTIONS_FILE,
            contract.SAMPLES_FILE,
            contract.TRAVERSALS_FILE,
        } <= names
        assert "images" in names  # the grids logged every tracker.image_every epochs
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/index.html" in report


@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    base = [*TINY, "tracker=mlflow", f"tracker.mlflow.tracking_uri={store}"]
    run_dir = tmp_path / "run"
    assert run_job(bridge.compose([*base, "train.epochs=2"]), run_dir)["status"] == "completed"
    first = json.loads((run_dir / HANDOFF_FILE).read_text())["run_id"]
    # As if killed after epoch 2 of 3: the checkpoint holds epoch 2, the summary says running.
    summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
    summary["status"] = "running"
    (run_dir / contract.SUMMARY_FILE).write_text(json.dumps(summary))
    assert run_job(bridge.compose([*base, "train.epochs=3"]), run_dir)["status"] == "completed"
    assert json.loads((run_dir / HANDOFF_FILE).read_text())["run_id"] == first
    client = MlflowClient(store)
    assert len(client.search_runs([client.get_run(first).info.experiment_id])) == 1
    steps = [int(r["step"]) for r in metrics_rows(run_dir) if r["split"] == "val"]
    assert [m.step for m in client.get_metric_history(first, "val/kl")] == steps
    assert client.get_run(first).info.status == "FINISHED"


@pytest.mark.slow
def test_trackers_never_change_the_record_even_when_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tensorboard_disk_full_at_epoch_2(monkeypatch)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    plain = run_job(bridge.compose([*TINY, "train.epochs=3"]), tmp_path / "plain")
    trackers = ["tracker=[tensorboard,mlflow]", f"tracker.mlflow.tracking_uri={store}"]
    tracked_cfg = bridge.compose([*TINY, "train.epochs=3", "tracker.image_every=1", *trackers])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        tracked = run_job(tracked_cfg, tmp_path / "tracked")
    assert plain["status"] == tracked["status"] == "completed"
    assert record_numbers(tmp_path / "plain") == record_numbers(tmp_path / "tracked")
    a = tensorfile.loads((tmp_path / "plain" / contract.CHECKPOINT_FILE).read_bytes())
    b = tensorfile.loads((tmp_path / "tracked" / contract.CHECKPOINT_FILE).read_bytes())
    for key, value in a["state"]["model"].items():
        assert torch.equal(value, b["state"]["model"][key]), key
    for name in (contract.RECONSTRUCTIONS_FILE, contract.SAMPLES_FILE, contract.TRAVERSALS_FILE):
        assert (tmp_path / "plain" / name).read_bytes() == (
            tmp_path / "tracked" / name
        ).read_bytes()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "tracker tensorboard failed" in warnings[0]
    # The other tracker went on to the end.
    run_id = json.loads((tmp_path / "tracked" / HANDOFF_FILE).read_text())["run_id"]
    history = MlflowClient(store).get_metric_history(run_id, "val/kl")
    assert len(history) == 3


@pytest.mark.slow
def test_a_store_damaged_mid_run_drops_the_direct_writer_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The direct writer (an existing store) meets a real SQLite error when the store's file is
    overwritten after the run has started: one warning, the run and its record unchanged."""
    from vaesweep.tracking.mlflow_sqlite import SqliteStore

    path = tmp_path / "store.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # an existing store
    real = SqliteStore.log_batch

    def damaged_before_the_first_rows(self: SqliteStore, run_id: str, **kw: Any) -> None:
        if kw.get("metrics"):
            with open(path, "r+b") as f:  # as another program, or a failing disk, would
                f.write(b"\0" * 4096)
        real(self, run_id, **kw)

    monkeypatch.setattr(SqliteStore, "log_batch", damaged_before_the_first_rows)
    plain = run_job(bridge.compose([*TINY, "train.epochs=2"]), tmp_path / "plain")
    trackers = ["tracker=[tensorboard,mlflow]", f"tracker.mlflow.tracking_uri=sqlite:///{path}"]
    tracked_cfg = bridge.compose([*TINY, "train.epochs=2", *trackers])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        tracked = run_job(tracked_cfg, tmp_path / "tracked")
    assert plain["status"] == tracked["status"] == "completed"
    assert record_numbers(tmp_path / "plain") == record_numbers(tmp_path / "tracked")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "tracker mlflow failed in on_epoch (DatabaseError" in warnings[0]
    assert json.loads((tmp_path / "tracked" / HANDOFF_FILE).read_text())["run_id"]
    assert list((tmp_path / "tracked").glob("events.out.tfevents.*"))  # TensorBoard went on


def test_unreachable_store_is_one_line_exit_2_before_training(outputs: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "tracker=mlflow", "tracker.mlflow.tracking_uri=http://127.0.0.1:9"]
    )
    assert result.exit_code == 2, result.output
    assert "cannot use the store http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output and not outputs.exists()


@pytest.mark.slow
def test_submitit_runs_log_from_their_own_processes(outputs: Path, tiny: list[str]) -> None:
    """The SLURM code path (submitit, one process per job: here one stack of both runs) logs
    each run to both trackers."""
    args = ["sweep", "beta=0.1,1", "tracker=[tensorboard,mlflow]", "--name", "sub"]
    result = CliRunner().invoke(app, [*args, *tiny, "--launcher", "submitit_local"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{outputs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sub")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == ["beta=0.1", "beta=1"]
    for child in children:
        run_dir = outputs / "sweeps" / "sub" / child.info.run_name
        steps = [int(r["step"]) for r in metrics_rows(run_dir) if r["split"] == "val"]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val/elbo")] == steps
        assert list(run_dir.glob("events.out.tfevents.*"))


class _Failing(http.server.BaseHTTPRequestHandler):
    """A server gone behind its proxy: every request is answered 503 (MLflow retries it)."""

    asked = 0

    def _answer(self) -> None:
        type(self).asked += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_the_report_is_written_when_the_sweeps_server_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its upload held `vaesweep report` for minutes of MLflow's retries; now it asks the server
    a few times, warns in one line, and the report is written (exit 0)."""
    sweep_dir = tmp_path / "sweeps" / "gone"
    fabricate_sweep(sweep_dir, [0.1, 1.0], images=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        handoff = {"tracking_uri": uri, "experiment_id": "1", "run_id": "0" * 32}
        (sweep_dir / HANDOFF_FILE).write_text(json.dumps(handoff))
        with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
            result = CliRunner().invoke(app, ["report", str(sweep_dir)])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert (sweep_dir / "report" / "index.html").exists()
    assert "report logged to MLflow" not in result.output
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "could not upload the report to MLflow" in warnings[0]
    assert _Failing.asked <= 3  # the probe, the request and one retry (MLflow's 8, minutes)


@pytest.mark.slow
def test_a_run_resumed_after_a_kill_names_its_stale_points(tmp_path: Path) -> None:
    """A hard kill goes back to the last checkpoint, but MLflow keeps the points logged after
    it (it cannot delete them): the run's tag says which epochs have a stale point, and the
    newest point of a step (MLflow's latest value) is the resumed run's."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    base = [*TINY, "tracker=mlflow", f"tracker.mlflow.tracking_uri={store}"]
    run_dir = tmp_path / "run"
    assert run_job(bridge.compose([*base, "train.epochs=2"]), run_dir)["status"] == "completed"
    at_epoch_2 = (run_dir / contract.CHECKPOINT_FILE).read_bytes()

    def killed_after_epoch_3_with_the_checkpoint_of_epoch_2() -> None:
        (run_dir / contract.CHECKPOINT_FILE).write_bytes(at_epoch_2)
        summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
        summary["status"] = "running"
        (run_dir / contract.SUMMARY_FILE).write_text(json.dumps(summary))

    killed_after_epoch_3_with_the_checkpoint_of_epoch_2()  # epochs 1-2 logged: none stale
    assert run_job(bridge.compose([*base, "train.epochs=3"]), run_dir)["status"] == "completed"
    run_id = json.loads((run_dir / HANDOFF_FILE).read_text())["run_id"]
    client = MlflowClient(store)
    assert "stale_points" not in client.get_run(run_id).data.tags
    killed_after_epoch_3_with_the_checkpoint_of_epoch_2()  # epoch 3 logged, then lost
    assert run_job(bridge.compose([*base, "train.epochs=3"]), run_dir)["status"] == "completed"
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
    steps = {int(r["epoch"]): int(r["step"]) for r in metrics_rows(run_dir)}
    assert run.data.tags["resumed_after_step"] == str(steps[2])
    tag = run.data.tags["stale_points"]
    assert tag.startswith("epoch 3: logged before the run was killed, then resumed after epoch 2")
    last = [r for r in metrics_rows(run_dir) if r["split"] == "val"][-1]
    points = [m for m in client.get_metric_history(run_id, "val/kl") if m.step == int(last["step"])]
    assert len(points) == 2  # the stale point stays beside the new one
    newest = max(points, key=lambda m: m.timestamp)
    assert newest.value == pytest.approx(float(last["kl"]), rel=1e-12)
    assert run.data.metrics["val/kl"] == newest.value


@pytest.mark.slow
def test_an_interrupted_run_says_so_in_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a launcher's SIGTERM) after epoch 1: the run's tag said `running`."""
    from vaesweep.run import job
    from vaesweep.tracking import Trackers

    real = Trackers.epoch

    def ctrl_c_after_epoch_1(self: Trackers, rows: list[dict[str, Any]]) -> None:
        real(self, rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trackers, "epoch", ctrl_c_after_epoch_1)
    # What is logged, not how long Ctrl-C waits for it (a busy machine may need more).
    monkeypatch.setattr(job, "INTERRUPTED_WAIT_S", job.END_WAIT_S)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = bridge.compose([*TINY, "tracker=mlflow", f"tracker.mlflow.tracking_uri={store}"])
    with pytest.raises(KeyboardInterrupt):
        run_job(cfg, tmp_path / "run")
    run_id = json.loads((tmp_path / "run" / HANDOFF_FILE).read_text())["run_id"]
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.tags["status"] == "interrupted"
    assert run.info.status == "KILLED"
    # The summary.json artifact said `running`: the file as it was when the trackers ended.
    artifact = Path(client.download_artifacts(run_id, "summary.json", str(tmp_path / "dl")))
    logged = json.loads(artifact.read_text())
    assert logged["status"] == "interrupted"
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert logged == {**on_disk, "status": "interrupted"}


@pytest.mark.slow
def test_the_end_waits_for_a_live_server_and_not_for_a_dead_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A server killed during training: MLflow's retries held the run's end for the whole
    wait (120 s); now it ends at once with one warning. A live server gets everything."""
    from vaesweep.tracking import Trackers

    with mlflow_server(tmp_path / "server") as server:
        base = [*TINY, "tracker=mlflow", f"tracker.mlflow.tracking_uri={server.uri}"]
        with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
            live = run_job(bridge.compose(base), tmp_path / "live")
        assert live["status"] == "completed"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        run_id = json.loads((tmp_path / "live" / HANDOFF_FILE).read_text())["run_id"]
        run = MlflowClient(server.uri).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "completed"
        # MLflow's two links per run ("View run ... at", "View experiment at") stay off the
        # terminal: a sweep printed two lines per run.
        assert "View run" not in "".join(capfd.readouterr())

        real = Trackers.epoch

        def server_dies_after_epoch_1(self: Trackers, rows: list[dict[str, Any]]) -> None:
            real(self, rows)
            if rows[0]["epoch"] == 1:
                server.kill()

        monkeypatch.setattr(Trackers, "epoch", server_dies_after_epoch_1)
        with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
            dead = run_job(bridge.compose(base), tmp_path / "dead")
    assert dead["status"] == "completed"
    assert record_numbers(tmp_path / "dead") == record_numbers(tmp_path / "live")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "tracker mlflow cannot reach its store" in warning, warning
    assert "does not wait for it" in warning
