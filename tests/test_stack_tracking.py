"""Trackers in a stacked sweep, read back with the real tools: every member of the stack has
its own TensorBoard event files and its own MLflow child run, equal to its metrics.csv, as its
single run would; a resumed stack continues each member's MLflow run; a tracker that fails
warns once and every member goes on with its record unchanged."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_with
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tracker_faults import metrics_rows, record_numbers, tensorboard_disk_full_at_epoch_2
from typer.testing import CliRunner

from vaesweep import tensorfile
from vaesweep.bridge import compose as bridge
from vaesweep.cli import app
from vaesweep.record import contract
from vaesweep.run.stack_job import run_stack
from vaesweep.run.stack_members import Member
from vaesweep.tracking.base import as_text, flatten

pytestmark = pytest.mark.slow
BETAS = ("0.1", "1", "4")
EPOCHS = 3
GRIDS = (contract.RECONSTRUCTIONS_FILE, contract.SAMPLES_FILE, contract.TRAVERSALS_FILE)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MlflowClient]]:
    """`vaesweep sweep beta=0.1,1,4 tracker=[tensorboard,mlflow]`: one stack of three."""
    root = tmp_path_factory.mktemp("stack_tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("VAESWEEP_OUTPUTS", str(root / "outputs"))
        args = ["sweep", f"beta={','.join(BETAS)}", "tracker=[tensorboard,mlflow]", "--name", "st"]
        args += tiny_with(f"train.epochs={EPOCHS}", "tracker.image_every=2")
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "not stacked" not in result.output
    yield (
        root / "outputs" / "sweeps" / "st",
        MlflowClient(f"sqlite:///{root / 'outputs' / 'mlflow.db'}"),
    )


def _values(run_dir: Path) -> Iterator[tuple[str, int, float]]:
    """(``<split>/<column>``, step, value) of every number in metrics.csv."""
    for row in metrics_rows(run_dir):
        for column, text in row.items():
            if column not in ("split", "step") and text != "":
                yield f"{row['split']}/{column}", int(row["step"]), float(text)


def _equal(logged: float, value: float, rel: float) -> bool:
    if math.isnan(value):
        return math.isnan(logged)
    return logged == pytest.approx(value, rel=rel, abs=1e-30)


def test_the_sweep_trained_as_one_stack(sweep: tuple[Path, MlflowClient]) -> None:
    sweep_dir, _ = sweep
    for beta in BETAS:
        summary = json.loads((sweep_dir / f"beta={beta}" / contract.SUMMARY_FILE).read_text())
        assert summary["status"] == "completed"
        assert summary["stack"] == [f"beta={b}" for b in BETAS]


@pytest.mark.parametrize("beta", BETAS)
def test_each_members_events_equal_its_metrics_csv(
    sweep: tuple[Path, MlflowClient], beta: str
) -> None:
    run_dir = sweep[0] / f"beta={beta}"
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    expected = set()
    for tag, step, value in _values(run_dir):
        expected.add(tag)
        at_step = [e.value for e in acc.Scalars(tag) if e.step == step]
        assert len(at_step) == 1 and _equal(at_step[0], value, 1e-6), (tag, step)  # float32
    assert set(acc.Tags()["scalars"]) - expected == {"final/iwae_nll"}
    summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
    assert acc.Scalars("final/iwae_nll")[0].value == pytest.approx(summary["iwae"]["nll"], rel=1e-6)
    # Grids at epoch 2 (tracker.image_every) and 3 (the last), the last equal to the PNGs.
    steps = sorted({int(r["step"]) for r in metrics_rows(run_dir)})
    assert [e.step for e in acc.Images("images/reconstructions")] == steps[1:]
    assert [e.step for e in acc.Images("images/traversals")] == steps[2:]
    from PIL import Image

    for tag, name in (("images/reconstructions", GRIDS[0]), ("images/samples", GRIDS[1])):
        logged = np.asarray(Image.open(io.BytesIO(acc.Images(tag)[-1].encoded_image_string)))
        on_disk = np.asarray(Image.open(run_dir / name))
        if on_disk.ndim == 2:  # TensorBoard stores a grey grid as RGB with equal channels
            on_disk = np.repeat(on_disk[:, :, None], logged.shape[2], axis=2)
        assert np.array_equal(logged, on_disk), tag
    content = acc.PluginTagToContent("hparams")
    data = {t: plugin_data_pb2.HParamsPluginData.FromString(c) for t, c in content.items()}
    assert dict(data["_hparams_/session_start_info"].session_start_info.hparams)[
        "beta"
    ].number_value == float(beta)
    exp = data["_hparams_/experiment"].experiment
    domain = [v.number_value for v in exp.hparam_infos[0].domain_discrete.values]
    assert [h.name for h in exp.hparam_infos] == ["beta"] and domain == [float(b) for b in BETAS]
    assert data["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS


def test_each_member_is_an_mlflow_child_run_equal_to_its_metrics_csv(
    sweep: tuple[Path, MlflowClient],
) -> None:
    sweep_dir, client = sweep
    exp = client.get_experiment_by_name("st")  # one experiment per sweep, named after it
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.run_name == "st" and parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == sorted(f"beta={b}" for b in BETAS)
    for child in children:
        run_dir = sweep_dir / child.info.run_name
        run_id = child.info.run_id
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "completed"
        assert child.data.tags["swept_keys"] == "beta" and child.data.tags["host"]
        assert json.loads((run_dir / contract.MLFLOW_FILE).read_text())["run_id"] == run_id
        history: dict[str, dict[int, list[float]]] = {}
        for tag, step, value in _values(run_dir):
            if tag not in history:
                history[tag] = {}
                for m in client.get_metric_history(run_id, tag):
                    history[tag].setdefault(m.step, []).append(m.value)
            at_step = history[tag].get(step)
            assert at_step is not None and len(at_step) == 1, (tag, step)
            assert _equal(at_step[0], value, 1e-12), (tag, step)
        assert set(child.data.metrics) - set(history) == {"final/iwae_nll"}
        summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
        assert child.data.params == {k: as_text(v) for k, v in flatten(summary["config"]).items()}
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {contract.CONFIG_FILE, contract.SUMMARY_FILE, *GRIDS, "images"} <= names


def _members(root: Path, extra: list[str]) -> list[Member]:
    out = []
    for beta in ("0.1", "1"):
        overrides = [*TINY, "train.threads=1", f"beta={beta}", *extra]
        out.append(Member(bridge.compose(overrides), root / f"beta={beta}", overrides))
    return out


def test_a_resumed_stack_continues_each_members_mlflow_run(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    tracked = ["tracker=mlflow", f"tracker.mlflow.tracking_uri={store}"]
    first = run_stack(_members(tmp_path / "s", [*tracked, "train.epochs=2"]))
    assert [s["status"] for s in first] == ["completed", "completed"]
    dirs = [m.run_dir for m in _members(tmp_path / "s", [])]
    ids = [json.loads((d / contract.MLFLOW_FILE).read_text())["run_id"] for d in dirs]
    for d in dirs:  # as if killed after epoch 2 of 3: the checkpoint holds epoch 2
        summary = json.loads((d / contract.SUMMARY_FILE).read_text())
        summary["status"] = "running"
        (d / contract.SUMMARY_FILE).write_text(json.dumps(summary))
    again = run_stack(_members(tmp_path / "s", [*tracked, "train.epochs=3"]))
    assert [s["resumed"] for s in again] == [[2], [2]]
    client = MlflowClient(store)
    experiment = client.get_run(ids[0]).info.experiment_id
    assert len(client.search_runs([experiment])) == 2  # no new run on resume
    for d, run_id in zip(dirs, ids):
        assert json.loads((d / contract.MLFLOW_FILE).read_text())["run_id"] == run_id
        steps = [int(r["step"]) for r in metrics_rows(d) if r["split"] == "val"]
        assert len(steps) == 3
        assert [m.step for m in client.get_metric_history(run_id, "val/kl")] == steps
        assert client.get_run(run_id).info.status == "FINISHED"


def test_a_failing_tracker_warns_once_and_every_member_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tensorboard_disk_full_at_epoch_2(monkeypatch)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    plain = run_stack(_members(tmp_path / "plain", ["train.epochs=3"]))
    trackers = ["tracker=[tensorboard,mlflow]", f"tracker.mlflow.tracking_uri={store}"]
    extra = ["train.epochs=3", "tracker.image_every=1", *trackers]
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        tracked = run_stack(_members(tmp_path / "tracked", extra))
    assert [s["status"] for s in plain + tracked] == ["completed"] * 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "tracker tensorboard failed" in warnings[0], warnings
    client = MlflowClient(store)
    for a, b in zip(_members(tmp_path / "plain", []), _members(tmp_path / "tracked", [])):
        # The same stack with and without trackers: the same numbers, weights and grids.
        assert record_numbers(a.run_dir) == record_numbers(b.run_dir)
        x = tensorfile.loads((a.run_dir / contract.CHECKPOINT_FILE).read_bytes())
        y = tensorfile.loads((b.run_dir / contract.CHECKPOINT_FILE).read_bytes())
        for key, value in x["state"]["model"].items():
            assert torch.equal(value, y["state"]["model"][key]), key
        for name in GRIDS:
            assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes(), name
        # The other tracker went on to the end for every member.
        run_id = json.loads((b.run_dir / contract.MLFLOW_FILE).read_text())["run_id"]
        assert len(client.get_metric_history(run_id, "val/kl")) == EPOCHS
