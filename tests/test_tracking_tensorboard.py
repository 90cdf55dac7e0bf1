"""TensorBoard end to end: events read back with TensorBoard's own reader equal metrics.csv,
images and the HParams session are there, and the real ``tensorboard`` server serves them."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_with
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tracker_faults import metrics_rows
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.record import contract

pytestmark = pytest.mark.slow
EPOCHS = 3
BETAS = ("0.1", "1")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 2-run beta sweep logged to TensorBoard (3 epochs, grids every 2 epochs), one run per
    process."""
    root = tmp_path_factory.mktemp("tb")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("VAESWEEP_OUTPUTS", str(root / "outputs"))
        args = ["sweep", f"beta={','.join(BETAS)}", "tracker=tensorboard", "--name", "tb"]
        args += tiny_with(f"train.epochs={EPOCHS}", "tracker.image_every=2")
        args.append("--no-stack")  # runs of their own (members of a stack: test_stack_tracking)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    yield root / "outputs" / "sweeps" / "tb"


def _events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("beta", BETAS)
def test_every_metrics_csv_value_is_a_scalar_at_its_step(sweep_dir: Path, beta: str) -> None:
    run_dir = sweep_dir / f"beta={beta}"
    acc = _events(run_dir)
    rows = metrics_rows(run_dir)
    assert len(rows) == 2 * EPOCHS
    expected_tags = set()
    for row in rows:
        for column, text in row.items():
            if column in ("split", "step") or text == "":
                continue
            tag = f"{row['split']}/{column}"
            expected_tags.add(tag)
            at_step = [e.value for e in acc.Scalars(tag) if e.step == int(row["step"])]
            assert len(at_step) == 1, (tag, row["step"])
            value = float(text)
            if math.isnan(value):
                assert math.isnan(at_step[0])
            else:  # event files hold float32
                assert at_step[0] == pytest.approx(value, rel=1e-6, abs=1e-30), tag
    scalar_tags = set(acc.Tags()["scalars"])
    assert expected_tags <= scalar_tags
    # Nothing but the CSV's values, plus the IWAE estimate of the summary.
    assert scalar_tags - expected_tags == {"final/iwae_nll"}
    assert {"train/beta_t", "val/beta_t", "val/kl_dim_0", "val/kl_dim_3"} <= scalar_tags
    summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
    assert acc.Scalars("final/iwae_nll")[0].value == pytest.approx(summary["iwae"]["nll"], rel=1e-6)


def test_grids_every_image_every_epochs_and_the_last_equals_the_record(sweep_dir: Path) -> None:
    run_dir = sweep_dir / "beta=0.1"
    acc = _events(run_dir)
    steps = sorted({int(r["step"]) for r in metrics_rows(run_dir)})  # one step per epoch
    recon = acc.Images("images/reconstructions")
    assert [e.step for e in recon] == [steps[1], steps[2]]  # epoch 2 (image_every), 3 (last)
    assert [e.step for e in acc.Images("images/samples")] == [steps[1], steps[2]]
    assert [e.step for e in acc.Images("images/traversals")] == [steps[2]]
    from PIL import Image

    for tag, name in (
        ("images/reconstructions", contract.RECONSTRUCTIONS_FILE),
        ("images/samples", contract.SAMPLES_FILE),
    ):
        logged = np.asarray(Image.open(io.BytesIO(acc.Images(tag)[-1].encoded_image_string)))
        on_disk = np.asarray(Image.open(run_dir / name))
        if on_disk.ndim == 2:  # TensorBoard stores a grey grid as RGB with equal channels
            on_disk = np.repeat(on_disk[:, :, None], logged.shape[2], axis=2)
        assert np.array_equal(logged, on_disk), tag


def test_hparams_session_has_the_swept_key_and_status(sweep_dir: Path) -> None:
    for beta in BETAS:
        acc = _events(sweep_dir / f"beta={beta}")
        content = acc.PluginTagToContent("hparams")
        data = {tag: plugin_data_pb2.HParamsPluginData.FromString(c) for tag, c in content.items()}
        start = data["_hparams_/session_start_info"].session_start_info
        assert dict(start.hparams)["beta"].number_value == float(beta)
        exp = data["_hparams_/experiment"].experiment
        assert [h.name for h in exp.hparam_infos] == ["beta"]
        domain = [v.number_value for v in exp.hparam_infos[0].domain_discrete.values]
        assert domain == [float(b) for b in BETAS]
        metric_tags = {m.name.tag for m in exp.metric_infos}
        assert {"val/elbo", "val/kl", "val/recon", "final/iwae_nll"} <= metric_tags
        assert metric_tags <= set(acc.Tags()["scalars"])
        end = data["_hparams_/session_end_info"].session_end_info
        assert end.status == 1  # STATUS_SUCCESS: the run completed
        status = acc.Tensors("run/status/text_summary")[-1].tensor_proto.string_val[0]
        assert status.decode() == "completed"


def test_the_tensorboard_server_serves_the_sweep(sweep_dir: Path) -> None:
    """The real server on a free loopback port: runs, scalars equal to metrics.csv, HParams."""
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe), "--logdir", str(sweep_dir), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:  # the server prints its address once it listens
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if found:
                url = found.group(1)
                break
        assert url, "tensorboard never printed its address"
        rows = [r for r in metrics_rows(sweep_dir / "beta=1") if r["split"] == "val"]
        query = f"{url}/data/plugin/scalars/scalars?run=beta%3D1&tag=val%2Fkl"
        data = _poll_json(query, lambda d: isinstance(d, list) and len(d) == len(rows))
        assert [step for _, step, _ in data] == [int(r["step"]) for r in rows]
        for (_, _, value), row in zip(data, rows):
            assert value == pytest.approx(float(row["kl"]), rel=1e-6)
        runs = _poll_json(f"{url}/data/runs", lambda d: len(d) == len(BETAS))
        assert sorted(runs) == sorted(f"beta={b}" for b in BETAS)
        groups = _poll_json(
            f"{url}/data/plugin/hparams/session_groups",
            lambda d: len(d.get("sessionGroups", [])) == len(BETAS),
            body={
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )
        betas = sorted(g["hparams"]["beta"] for g in groups["sessionGroups"])
        assert betas == sorted(float(b) for b in BETAS)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _poll_json(url: str, ready, body: dict | None = None, tries: int = 600) -> object:
    """GET (or POST ``body``) until ``ready(data)``: the server loads event files lazily."""
    data: object = None
    for _ in range(tries):
        request = urllib.request.Request(url)
        if body is not None:
            request = urllib.request.Request(
                url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = json.loads(response.read())
        except OSError:
            data = None
        if data is not None and ready(data):
            return data
        time.sleep(0.2)  # the server's reload loop runs on its own; look again shortly
    raise AssertionError(f"{url} never became ready; last answer: {data!r}")
