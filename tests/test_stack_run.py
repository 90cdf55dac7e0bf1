"""A stack's run directories: each member leaves a single run's record; kill and resume."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from vaesweep import tensorfile
from vaesweep.bridge import compose as bridge
from vaesweep.model import build_model
from vaesweep.record import contract
from vaesweep.run import run_job
from vaesweep.run.stack_job import run_stack
from vaesweep.run.stack_members import Member
from vaesweep.training import stacked_trainer

pytestmark = pytest.mark.slow

TIMING = {"seconds", "images_per_sec"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _close(a: list[dict[str, str]], b: list[dict[str, str]], rel: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert list(ra) == list(rb)
        for key in set(ra) - TIMING:
            if ra[key] in ("", "train", "val") or rel == 0.0:
                assert ra[key] == rb[key], key
            else:
                assert float(rb[key]) == pytest.approx(float(ra[key]), rel=rel, abs=1e-6), key


def _members(root: Path, tiny: list[str], epochs: int = 2) -> list[Member]:
    out = []
    for i, (beta, seed) in enumerate(((0.01, 0), (1.0, 1))):
        overrides = [*tiny, f"train.epochs={epochs}", "train.threads=1", f"beta={beta}"]
        overrides.append(f"seed={seed}")
        out.append(Member(bridge.compose(overrides), root / f"m{i}", overrides))
    return out


def test_each_member_leaves_the_record_of_its_single_run(tmp_path: Path, tiny: list[str]) -> None:
    members = _members(tmp_path / "stack", tiny)
    summaries = run_stack(members)
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    single = run_job(members[1].config, tmp_path / "single", overrides=members[1].overrides)
    member_dir = members[1].run_dir
    _close(_rows(tmp_path / "single"), _rows(member_dir), rel=1e-3)
    on_disk = json.loads((member_dir / contract.SUMMARY_FILE).read_text())
    assert set(on_disk) ^ set(single) == {"stack"}  # every key of the single run, and "stack"
    assert set(on_disk) <= set(contract.SUMMARY_KEYS)
    assert on_disk["stack"] == ["m0", "m1"]
    assert on_disk["iwae"]["nll"] == pytest.approx(single["iwae"]["nll"], rel=1e-3)
    assert on_disk["iwae"].keys() == single["iwae"].keys()  # "calibrated" too (mse runs)
    images = (contract.RECONSTRUCTIONS_FILE, contract.SAMPLES_FILE, contract.TRAVERSALS_FILE)
    for name in (contract.CONFIG_FILE, *images):
        assert (member_dir / name).exists(), name
    assert (member_dir / contract.CONFIG_FILE).read_text() == members[1].config.to_yaml()
    saved = tensorfile.loads((member_dir / contract.CHECKPOINT_FILE).read_bytes())
    ref = tensorfile.loads((tmp_path / "single" / contract.CHECKPOINT_FILE).read_bytes())
    assert saved["state"].keys() == ref["state"].keys()
    assert {k: v.shape for k, v in saved["state"]["model"].items()} == {
        k: v.shape for k, v in ref["state"]["model"].items()
    }
    config = members[1].config
    model = build_model(config.model, config.loss, tuple(on_disk["data"]["shape"]))
    model.load_state_dict(saved["state"]["model"], strict=True)


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing catches it)."""


def _kill_at(monkeypatch: pytest.MonkeyPatch, epoch: int, member: int) -> None:
    """Kill the stack when member ``member`` is about to record epoch ``epoch``."""
    real_end = stacked_trainer.StackedTrainer._end_epoch

    def end_epoch(self: Any, state: Any, *args: Any) -> None:
        hooks = args[1]
        if state.epoch == epoch:
            inner = hooks[member].on_epoch_end

            def die(result: Any, member_state: Any) -> None:
                raise Killed

            hooks[member].on_epoch_end = die
            try:
                real_end(self, state, *args)
            finally:
                hooks[member].on_epoch_end = inner
        else:
            real_end(self, state, *args)

    monkeypatch.setattr(stacked_trainer.StackedTrainer, "_end_epoch", end_epoch)


@pytest.mark.parametrize("every_s", [0, 3600], ids=["checkpoint-every-epoch", "kept-in-memory"])
def test_a_killed_stack_resumes_each_member_where_it_stopped(
    every_s: int, tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """0: a checkpoint after every epoch. 3600: only after the first and the last; the
    stopped stack saves each member's last recorded epoch from memory."""
    tiny = [*tiny, f"train.checkpoint_every_s={every_s}"]
    straight = _members(tmp_path / "straight", tiny, epochs=3)
    run_stack(straight)
    killed = _members(tmp_path / "killed", tiny, epochs=3)
    with monkeypatch.context() as patch:
        # Member 0 records epoch 2, then the kill comes before member 1 records it.
        _kill_at(patch, epoch=2, member=1)
        with pytest.raises(Killed):
            run_stack(killed)
    epochs = [
        tensorfile.loads((m.run_dir / contract.CHECKPOINT_FILE).read_bytes())["state"]["epoch"]
        for m in killed
    ]
    assert epochs == [2, 1]
    assert [json.loads((m.run_dir / "summary.json").read_text())["status"] for m in killed] == [
        "running",
        "running",
    ]
    resumed = run_stack(_members(tmp_path / "killed", tiny, epochs=3))
    assert [s["status"] for s in resumed] == ["completed", "completed"]
    assert resumed[0]["resumed"] == [2] and resumed[1]["resumed"] == [1]
    # Members at different epochs continue as separate stacks (of one member each here):
    # the same mathematics with other kernel shapes, so equal to 1e-3, not bit for bit.
    for a, b in zip(straight, killed):
        _close(_rows(a.run_dir), _rows(b.run_dir), rel=1e-3)


def test_a_stop_during_the_end_of_run_outputs_leaves_the_members_interrupted(
    tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C reaches only the main thread; the members' end-of-run passes (IWAE) run in other
    threads and used to finish, and be recorded completed, before the stop was acted on."""
    from vaesweep.run import stack_outputs, stack_parts

    real = stack_outputs.final_iwae

    def stopped_iwae(*args: Any, **kwargs: Any) -> Any:
        stack_parts.STOP.set()  # as the main thread does on Ctrl-C
        return real(*args, **kwargs)

    monkeypatch.setattr(stack_outputs, "final_iwae", stopped_iwae)
    members = _members(tmp_path / "s", tiny)
    with pytest.raises(stack_parts.Stopped):
        run_stack(members)
    statuses = [json.loads((m.run_dir / "summary.json").read_text())["status"] for m in members]
    assert "completed" not in statuses


def test_completed_members_are_left_untouched(tmp_path: Path, tiny: list[str]) -> None:
    members = _members(tmp_path / "s", tiny)
    run_stack(members[:1])
    done = (members[0].run_dir / contract.SUMMARY_FILE).stat().st_mtime_ns
    summaries = run_stack(_members(tmp_path / "s", tiny))
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert (members[0].run_dir / contract.SUMMARY_FILE).stat().st_mtime_ns == done


def _three(root: Path, tiny: list[str], threads: int) -> list[Member]:
    out = []
    for i, (beta, seed) in enumerate(((0.01, 0), (1.0, 1), (0.1, 2))):
        overrides = [*tiny, f"train.threads={threads}", f"beta={beta}", f"seed={seed}"]
        out.append(Member(bridge.compose(overrides), root / f"m{i}", overrides))
    return out


def test_parts_side_by_side_give_the_members_of_one_stack(
    tmp_path: Path, tiny: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """With 2 torch threads on a CPU the 3 members train as 2 parts (2 + 1) in two threads,
    torch single-threaded in each: the same records as one stack of 3, within rounding, and
    each member's train.log holds its own epochs' lines."""
    caplog.set_level(logging.INFO, logger="vaesweep")
    one = _three(tmp_path / "one", tiny, threads=1)
    run_stack(one)
    parts = _three(tmp_path / "parts", tiny, threads=2)
    summaries = run_stack(parts)
    assert torch.get_num_threads() == 2  # the run's train.threads, back after the parts
    assert [s["status"] for s in summaries] == ["completed"] * 3
    assert [s["timings"]["stack_size"] for s in summaries] == [2, 2, 1]
    for m, summary in zip(parts, summaries):
        lines = [
            line
            for line in (m.run_dir / "train.log").read_text().splitlines()
            if "epoch " in line and "/2: recon" in line
        ]
        assert len(lines) == 2, (m.run_dir.name, lines)
        assert f"kl {summary['final']['val']['kl']:.4g} " in lines[-1]
    for a, b in zip(one, parts):
        _close(_rows(a.run_dir), _rows(b.run_dir), rel=1e-3)


def test_ctrl_c_stops_every_part_and_the_stack_resumes(
    tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT reaches the main thread, which waits for the parts: it stops them (each at its
    next step, records flushed) and raises; the members continue from their checkpoints."""
    import os
    import signal

    from vaesweep.run import stack_parts
    from vaesweep.run.record_hooks import RecordHooks

    original = RecordHooks.on_epoch_end

    def on_epoch_end(self: RecordHooks, result: Any, state: Any) -> None:
        original(self, result, state)
        if self.record.dir.name == "m2" and result.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)
            assert stack_parts.STOP.wait(timeout=600)  # the main thread took the interrupt

    parts = _three(tmp_path / "parts", [*tiny, "train.checkpoint_every_s=0"], threads=2)
    with monkeypatch.context() as patch:
        patch.setattr(RecordHooks, "on_epoch_end", on_epoch_end)
        with pytest.raises(KeyboardInterrupt):
            run_stack(parts)
    assert not stack_parts.STOP.is_set()
    stopped = json.loads((parts[2].run_dir / contract.SUMMARY_FILE).read_text())
    assert stopped["status"] == "running"
    saved = tensorfile.loads((parts[2].run_dir / contract.CHECKPOINT_FILE).read_bytes())
    assert saved["state"]["epoch"] == 1
    resumed = run_stack(_three(tmp_path / "parts", tiny, threads=2))
    assert [s["status"] for s in resumed] == ["completed"] * 3
    assert resumed[2]["resumed"] == [1]
    straight = _three(tmp_path / "straight", tiny, threads=2)
    run_stack(straight)
    for a, b in zip(straight, parts):
        _close(_rows(a.run_dir), _rows(b.run_dir), rel=1e-3)


@pytest.mark.parametrize("damage", ["foreign", "misshapen"])
def test_a_member_whose_checkpoint_cannot_be_used_fails_alone(
    damage: str, tmp_path: Path, tiny: list[str]
) -> None:
    """A checkpoint copied in from another run, or weights of the wrong shape, fail that member
    in one line; the other members of the stack resume and finish."""
    members = _members(tmp_path / "stack", tiny)
    run_stack(members)
    bad, good = members[0].run_dir, members[1].run_dir
    if damage == "foreign":
        (bad / contract.CHECKPOINT_FILE).write_bytes((good / contract.CHECKPOINT_FILE).read_bytes())
    else:
        checkpoint = tensorfile.loads((bad / contract.CHECKPOINT_FILE).read_bytes())
        weights = checkpoint["state"]["model"]
        first = next(iter(weights))
        weights[first] = torch.zeros(*[n + 1 for n in weights[first].shape])
        (bad / contract.CHECKPOINT_FILE).write_bytes(tensorfile.dumps(checkpoint))
    for run_dir in (bad, good):
        summary = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
        summary["status"] = contract.INTERRUPTED
        (run_dir / contract.SUMMARY_FILE).write_text(json.dumps(summary))
    summaries = run_stack(_members(tmp_path / "stack", tiny))
    assert [s["status"] for s in summaries] == ["failed", "completed"]
    assert summaries[0]["error_kind"] == "user"
    why = "different experiment" if damage == "foreign" else "does not fit this run's model"
    assert why in summaries[0]["error"] and "\n" not in summaries[0]["error"]
