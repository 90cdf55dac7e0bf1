"""Trackers without training: the config group, the missing-package error, the fan-out's
fault isolation and the naming of logged values."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vaesweep.bridge import compose as bridge
from vaesweep.cli import app
from vaesweep.config.from_dict import config_from_dict
from vaesweep.config.tracker import MlflowConfig, TensorBoardConfig
from vaesweep.errors import UserError
from vaesweep.tracking import RunInfo, Trackers, fanout, require_packages
from vaesweep.tracking.base import flatten, scalars, typed


def test_tracker_group_composes_none_one_and_a_list() -> None:
    assert bridge.compose([]).tracker.names == []
    assert bridge.compose(["tracker=tensorboard"]).tracker.names == ["tensorboard"]
    both = bridge.compose(["tracker=[tensorboard,mlflow]", "tracker.image_every=3"]).tracker
    assert both.names == ["tensorboard", "mlflow"]
    assert both.tensorboard == TensorBoardConfig() and both.mlflow == MlflowConfig()
    assert both.image_every == 3
    uri = bridge.compose(["tracker=mlflow", "tracker.mlflow.tracking_uri=http://h:5000"])
    assert uri.tracker.mlflow is not None and uri.tracker.mlflow.tracking_uri == "http://h:5000"


def test_tracker_settings_are_checked() -> None:
    with pytest.raises(UserError, match=r"tracker\.image_every=-1"):
        bridge.compose(["tracker.image_every=-1"])
    with pytest.raises(UserError, match="wandb"):
        bridge.compose(["tracker=wandb"])


def test_trackers_do_not_change_the_experiment_hash_and_round_trip() -> None:
    plain = bridge.compose(["beta=0.1"])
    tracked = bridge.compose(["beta=0.1", "tracker=[tensorboard,mlflow]"])
    assert plain.hash() == tracked.hash()
    assert config_from_dict(tracked.to_dict()) == tracked
    assert config_from_dict(plain.to_dict()) == plain


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == module else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(
    ("tracker", "module", "extra"),
    [
        ("tensorboard", "tensorboardX", "vaesweep[tensorboard]"),
        ("mlflow", "mlflow", "vaesweep[mlflow]"),
    ],
)
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_missing_package_is_one_line_exit_2_before_training(
    outputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    tracker: str,
    module: str,
    extra: str,
    command: str,
) -> None:
    _hide(monkeypatch, module)
    args = [command, f"tracker={tracker}"] + (["beta=0.1,1"] if command == "sweep" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"pip install '{extra}'" in result.output and module in result.output
    assert not outputs.exists()  # nothing was created, let alone trained


def test_require_packages_passes_when_installed() -> None:
    require_packages(["tensorboard", "mlflow"])


def test_scalars_use_the_csv_columns_behind_the_split() -> None:
    row = {"epoch": 2, "step": 12, "split": "val", "beta": 0.1, "kl": 1.5, "kl_dim_0": 0.5}
    assert dict(scalars(row)) == {
        "val/epoch": 2.0,
        "val/beta": 0.1,
        "val/kl": 1.5,
        "val/kl_dim_0": 0.5,
    }
    assert flatten({"train": {"lr": 0.001, "x": [1]}, "beta": 1}) == {
        "train.lr": 0.001,
        "train.x": [1],
        "beta": 1,
    }
    assert typed("0.1") == 0.1 and typed("true") is True and typed("warmup") == "warmup"


class _Recorder:
    """A tracker that records its calls, and fails on the epoch given."""

    def __init__(self, name: str, fail_on: int | None = None, interval: float = 0.0) -> None:
        self.name, self.fail_on, self.min_interval_s = name, fail_on, interval
        self.calls: list[tuple[str, Any]] = []
        self.batches: list[list[int]] = []
        self.thread_names: set[str] = set()

    def prepare(self) -> None:
        self.calls.append(("prepare", None))

    def on_start(self, info: RunInfo) -> None:
        self.calls.append(("start", info.name))

    def on_epoch(self, rows: list[dict[str, Any]]) -> None:
        self.thread_names.add(threading.current_thread().name)
        self.batches.append([r["epoch"] for r in rows])
        if any(r["epoch"] == self.fail_on for r in rows):
            raise OSError(28, "No space left on device")
        self.calls += [("epoch", r["epoch"]) for r in rows]

    def on_images(self, epoch: int, step: int, images: dict[str, Any]) -> None:
        self.calls.append(("images", epoch))

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        self.calls.append(("end", status))


def _info(tmp_path: Path) -> RunInfo:
    return RunInfo(run_dir=tmp_path, name="r", config={}, hparams={"beta": 1.0})


def test_a_failing_tracker_warns_once_and_the_others_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = _Recorder("good"), _Recorder("bad", fail_on=2)
    trackers = Trackers([good, bad], image_every=2)
    trackers.start(_info(tmp_path))
    for epoch in range(1, 5):
        trackers.epoch([{"epoch": epoch, "step": epoch * 10, "split": "train"}])
        if trackers.wants_images(epoch, 4):
            trackers.images(epoch, epoch * 10, {})
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.end("completed", {"status": "completed"})
    # Every call arrives; a grid may follow rows queued behind it (they go out first).
    assert good.calls[:2] == [("prepare", None), ("start", "r")]
    assert good.calls[-1] == ("end", "completed")
    assert [c for c in good.calls if c[0] == "epoch"] == [("epoch", e) for e in range(1, 5)]
    assert [c for c in good.calls if c[0] == "images"] == [("images", 2), ("images", 4)]
    for epoch in (2, 4):
        assert good.calls.index(("epoch", epoch)) < good.calls.index(("images", epoch))
    # Its calls stop at the failure (epoch 1 may have been batched with epoch 2).
    assert bad.calls[:2] == [("prepare", None), ("start", "r")]
    assert bad.calls[2:] in ([], [("epoch", 1)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "tracker bad failed in on_epoch" in warnings[0] and "No space left" in warnings[0]
    assert "record is intact" in warnings[0]
    # Trackers run off the training thread.
    assert good.thread_names == {"vaesweep-tracker-good"}


def test_no_trackers_is_free_and_falsy() -> None:
    trackers = Trackers.from_config(bridge.compose([]).tracker)
    assert not trackers and trackers.names == []
    assert not trackers.wants_images(5, 5)
    trackers.end("completed", {})


def test_rows_queued_within_the_interval_go_out_in_one_call(tmp_path: Path) -> None:
    slow = _Recorder("slow", interval=3600.0)  # only the end of the run cuts the wait short
    trackers = Trackers([slow], image_every=0)
    trackers.start(_info(tmp_path))
    for epoch in range(1, 6):
        trackers.epoch([{"epoch": epoch, "step": epoch, "split": "train"}])
    trackers.end("completed", {"status": "completed"})
    assert [e for batch in slow.batches for e in batch] == [1, 2, 3, 4, 5]
    assert len(slow.batches) <= 2  # the first call, then everything queued behind it
    assert slow.calls[-1] == ("end", "completed")


def test_grids_queued_among_rows_follow_them_and_do_not_split_the_batch(tmp_path: Path) -> None:
    slow = _Recorder("slow", interval=3600.0)
    trackers = Trackers([slow], image_every=2)
    trackers.start(_info(tmp_path))
    for epoch in range(1, 7):
        trackers.epoch([{"epoch": epoch, "step": epoch, "split": "train"}])
        if trackers.wants_images(epoch, 6):
            trackers.images(epoch, epoch, {})
    trackers.end("completed", {"status": "completed"})
    assert [e for batch in slow.batches for e in batch] == [1, 2, 3, 4, 5, 6]
    assert len(slow.batches) <= 2  # grids at epochs 2 and 4 did not cut the second batch
    images = [c for c in slow.calls if c[0] == "images"]
    assert images == [("images", 2), ("images", 4), ("images", 6)]
    assert slow.calls.index(("epoch", 6)) < slow.calls.index(("images", 6))
    assert slow.calls[-1] == ("end", "completed")


def test_one_list_of_tracker_names() -> None:
    from vaesweep.config.tracker import TRACKER_SCHEMAS
    from vaesweep.tracking.fanout import _FACTORIES
    from vaesweep.tracking.packages import REQUIREMENTS

    conf = Path(__file__).resolve().parents[1] / "conf" / "tracker"
    assert list(_FACTORIES) == list(REQUIREMENTS) == list(TRACKER_SCHEMAS)
    assert {p.stem for p in conf.glob("*.yaml")} == {"none", *TRACKER_SCHEMAS}


def test_only_the_tracking_package_imports_the_trackers_packages() -> None:
    from test_architecture import imports_of, package_sources

    packages = ("tensorboardX", "tensorboard", "mlflow")
    for module, source in package_sources().items():
        if module.startswith("vaesweep.tracking"):
            continue
        wrong = [n for n in imports_of(source, module) if n.split(".")[0] in packages]
        assert not wrong, f"{module} imports {wrong}"


def test_a_run_that_ends_still_running_tells_its_trackers_interrupted(tmp_path: Path) -> None:
    """Ctrl-C or a launcher's SIGTERM ends a run before its status changes: its trackers said
    `running` for ever (MLflow's tag, TensorBoard's status)."""
    seen: list[tuple[str, Any]] = []

    class Ending(_Recorder):
        def on_end(self, status: str, summary: dict[str, Any]) -> None:
            seen.append((status, summary["status"]))

    trackers = Trackers([Ending("t")])
    trackers.start(_info(tmp_path))
    trackers.end("running", {"status": "running"})
    assert seen == [("interrupted", "interrupted")]


class _Unreachable(_Recorder):
    """A tracker whose last call waits on a store that does not answer (as MLflow retries a
    server that is gone, for minutes), until the run kills what it holds."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.unreachable: str | None = None
        self.killed = threading.Event()
        #: Set when the run, having killed the process, waits for this thread to end.
        self.joined_after_kill = threading.Event()

    def watch(self, thread: threading.Thread) -> None:
        """Note when ``thread`` (the one calling on_end) is joined after the kill."""
        join = thread.join

        def watched(timeout: float | None = None) -> None:
            if self.killed.is_set():
                self.joined_after_kill.set()
            join(timeout)

        thread.join = watched  # type: ignore[method-assign]

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        self.unreachable = "NewConnectionError: [Errno 111] Connection refused"
        self.killed.wait()
        # The failed call lets go of what it held (the run's data) only once the run waits
        # for it: the run must not return before this thread has ended.
        self.joined_after_kill.wait()
        raise RuntimeError("the tracker's process exited with code -9")

    def close(self, wait_s: float) -> None:
        self.calls.append(("close", wait_s))
        self.killed.set()


def test_the_end_does_not_wait_for_a_tracker_whose_store_does_not_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It held the command for the whole wait (120 s), then warned that it was busy."""
    gone, healthy = _Unreachable("gone"), _Recorder("healthy")
    trackers = Trackers([gone, healthy])
    gone.watch(trackers._workers[0].thread)
    trackers.start(_info(tmp_path))
    trackers.epoch([{"epoch": 1, "step": 1, "split": "train"}])
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.end("completed", {"status": "completed"}, wait_s=30)
    assert gone.calls[-1] == ("close", 0.0)  # its process is killed, not left behind
    # ... and its thread has ended: one still freeing the run's tensors as the interpreter
    # exits aborts the process ("terminate called without an active exception").
    assert "vaesweep-tracker-gone" not in [t.name for t in threading.enumerate()]
    assert healthy.calls[-1] == ("end", "completed")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "tracker gone cannot reach its store (NewConnectionError" in warnings[0]
    assert "does not wait for it" in warnings[0]


def test_the_end_waits_for_a_busy_tracker_whose_store_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthy tracker still logging its backlog is waited for (polled while it works)."""

    polls = threading.Semaphore(0)

    class Busy(_Recorder):
        @property
        def unreachable(self) -> None:  # read by the end each time its poll finds it busy
            polls.release()

        def on_end(self, status: str, summary: dict[str, Any]) -> None:
            for _ in range(3):  # still busy after three of the end's polls
                polls.acquire()
            super().on_end(status, summary)

    monkeypatch.setattr(fanout, "_POLL_S", 0.01)
    busy = Busy("busy")
    trackers = Trackers([busy])
    trackers.start(_info(tmp_path))
    with caplog.at_level(logging.WARNING, logger="vaesweep.tracking"):
        trackers.end("completed", {"status": "completed"})
    assert busy.calls[-1] == ("end", "completed")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
