"""Records damaged from outside (edited by hand, truncated, planted) stop a command in one line
naming the file and the field, never with a traceback; and they never cost other runs."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch

from vaesweep import tensorfile
from vaesweep.errors import UserError
from vaesweep.record import RunRecord, contract
from vaesweep.record.checkpoint import DamagedCheckpoint, state_problem
from vaesweep.record.files import parse_json, read_json
from vaesweep.record.sweep_lock import LOCK_FILE, holder_gone
from vaesweep.record.sweep_plan import PLAN_FILE, DamagedPlan, PlannedRun, SweepPlan
from vaesweep.run.job import check_weights_fit

DEEP = "[" * 100_000 + "]" * 100_000


def _plan(tmp_path: Path) -> dict[str, Any]:
    plan = SweepPlan(
        name="s",
        overrides=["beta=0.1,1"],
        swept_keys=["beta"],
        runs=[PlannedRun("beta=0.1", {"beta": "0.1"}, ["beta=0.1"], 0)],
    )
    plan.save(tmp_path)
    return json.loads((tmp_path / PLAN_FILE).read_text())


def test_json_nested_too_deeply_is_unreadable_not_a_recursion_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(DEEP)
    (tmp_path / "x.json").write_text(DEEP)
    with pytest.raises(ValueError):
        read_json(tmp_path / "x.json")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", ["s"], "name should be a non-empty string"),
        ("overrides", 5, "overrides should be a list of strings"),
        ("overrides", [None], "overrides should be a list of strings"),
        ("swept_keys", "beta", "swept_keys"),
        ("launcher", {"a": 1}, "launcher should be a string"),
        ("jobs", "x", "jobs should be a whole number of at least 1"),
        ("jobs", 0, "jobs"),
        ("config_dirs", [1], "config_dirs"),
        ("stack_size", -1, "stack_size"),
        ("runs", {"a": 1}, "runs is not a list"),
        ("runs", [1], "runs[0] is not an object"),
    ],
)
def test_a_plan_with_a_field_of_the_wrong_type_is_damaged_and_named(
    tmp_path: Path, field: str, value: Any, named: str
) -> None:
    data = _plan(tmp_path)
    data[field] = value
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    with pytest.raises(DamagedPlan, match=named.replace("[", r"\[")):
        SweepPlan.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"), [("values", ["0.1"]), ("values", {"beta": 1}), ("stack", "0")]
)
def test_a_planned_run_with_a_field_of_the_wrong_type_is_damaged(
    tmp_path: Path, field: str, value: Any
) -> None:
    data = _plan(tmp_path)
    data["runs"][0][field] = value
    (tmp_path / PLAN_FILE).write_text(json.dumps(data))
    with pytest.raises(DamagedPlan, match=rf"runs\[0\]\.{field}"):
        SweepPlan.load(tmp_path)


@pytest.mark.parametrize("pid", [10**20, -1, 0, "x"])
def test_a_lock_naming_an_impossible_process_is_not_a_gone_holder(
    tmp_path: Path, pid: object
) -> None:
    """A pid no int can hold crashed `ls` (OverflowError); -1 or 0 would name a group."""
    info = {"pid": pid, "host": socket.gethostname(), "since": 1.0}
    (tmp_path / LOCK_FILE).write_text(json.dumps(info))
    assert holder_gone(tmp_path) is False
    (tmp_path / LOCK_FILE).write_text(DEEP)
    assert holder_gone(tmp_path) is False


def _state() -> dict[str, Any]:
    model = torch.nn.Linear(3, 2)
    return {
        "state": {
            "model": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"params": [0, 1]}]},
            "control": {},
            "generator": torch.Generator().get_state(),
            "epoch": 1,
            "step": 10,
        },
        "config": {"beta": 1.0},
    }


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("state", "epoch"), None, "epoch is NoneType"),
        (("state", "epoch"), -1, "epoch is int"),
        (("state", "step"), "x", "step is str"),
        (("state", "model"), [1], "model weights are list"),
        (("state", "model"), {}, "model weights are dict"),
        (("state", "model", "weight"), "x", "model weight 'weight' is str"),
        (("state", "control"), 3, "control state is int"),
        (("state", "optimizer"), [1], "optimizer state is list"),
        (("state", "optimizer"), {}, "optimizer state lacks"),
        (("state", "optimizer", "param_groups"), [], "optimizer state lacks"),
        (("state", "generator"), 5, "generator state is int"),
        (("state", "generator"), torch.zeros(3), "generator state is torch.float32"),
        (("config",), [1], "config is list"),
        (("state",), [1], "no state"),
    ],
)
def test_a_checkpoint_state_of_the_wrong_structure_is_named(
    path: tuple[str, ...], value: Any, named: str
) -> None:
    checkpoint = _state()
    assert state_problem(checkpoint) is None
    holder = checkpoint
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    problem = state_problem(checkpoint)
    assert problem is not None and named in problem


def test_a_damaged_checkpoint_is_one_line_before_use(tmp_path: Path) -> None:
    checkpoint = _state()
    checkpoint["state"]["epoch"] = None
    (tmp_path / contract.CHECKPOINT_FILE).write_bytes(tensorfile.dumps(checkpoint))
    with pytest.raises(DamagedCheckpoint, match="epoch is NoneType") as err:
        RunRecord(tmp_path).load_checkpoint()
    assert "\n" not in str(err.value) and "delete checkpoint.pt" in str(err.value)


def test_a_checkpoint_of_another_experiment_is_refused_before_resuming(tmp_path: Path) -> None:
    """A checkpoint copied in from another run (here: another beta) is refused by the check a
    resume makes before it launches, not by the job after the record says running."""
    record = RunRecord(tmp_path)
    record.update_summary(status=contract.INTERRUPTED, config={"beta": 0.5, "seed": 0})
    (tmp_path / contract.CHECKPOINT_FILE).write_bytes(tensorfile.dumps(_state()))
    before = (tmp_path / contract.SUMMARY_FILE).read_text()
    with pytest.raises(UserError, match=r"different experiment \(beta changed\)"):
        RunRecord(tmp_path).check_resumable()
    assert (tmp_path / contract.SUMMARY_FILE).read_text() == before


def test_weights_that_do_not_fit_the_model_are_named() -> None:
    model = torch.nn.Linear(3, 2)
    good = _state()
    check_weights_fit(good, model, Path("run"))
    wrong = _state()
    wrong["state"]["model"]["weight"] = torch.zeros(7, 7)
    with pytest.raises(DamagedCheckpoint, match=r"weight of shape \(7, 7\) where the model's is"):
        check_weights_fit(wrong, model, Path("run"))
    extra = _state()
    extra["state"]["model"]["other.bias"] = torch.zeros(1)
    with pytest.raises(DamagedCheckpoint, match=r"an unknown other\.bias"):
        check_weights_fit(extra, model, Path("run"))
    missing = _state()
    del missing["state"]["model"]["bias"]
    with pytest.raises(DamagedCheckpoint, match="no bias"):
        check_weights_fit(missing, model, Path("run"))


def test_report_reads_a_summary_nested_too_deeply_as_unreadable(tmp_path: Path) -> None:
    from vaesweep.report.data.load import read_summary

    (tmp_path / contract.SUMMARY_FILE).write_text(DEEP)
    summary, problem = read_summary(tmp_path)
    assert summary == {} and problem is not None and "unreadable" in problem


def test_ls_lists_a_sweep_whose_plan_has_wrong_types_as_damaged(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vaesweep.cli import app

    sweep = tmp_path / "sweeps" / "s"
    sweep.mkdir(parents=True)
    data = _plan(sweep)
    data["swept_keys"] = 7
    (sweep / PLAN_FILE).write_text(json.dumps(data))
    other = tmp_path / "sweeps" / "t"
    other.mkdir()
    _plan(other)
    result = CliRunner().invoke(app, ["ls", "--outputs", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "damaged" in result.output and "swept_keys" in result.output
    assert "t " in result.output or "│ t" in result.output
    assert os.path.exists(other / PLAN_FILE)


def test_a_tensor_file_round_trips_what_a_training_state_holds() -> None:
    base = torch.arange(12, dtype=torch.float32)
    state = {
        "model": {"w": base.view(3, 4), "w_t": base.view(3, 4).t(), "half": base[6:]},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "betas": (0.9, 0.999)},
        "bf16": torch.ones(2, dtype=torch.bfloat16),
        "scalars": [float("nan"), float("inf"), -float("inf"), 1.5, 7, True, None, "x"],
        "$odd": {"$tensor": "not a tag"},
        "empty": torch.zeros(0, 3),
    }
    back = tensorfile.loads(tensorfile.dumps(state))
    assert torch.equal(back["model"]["w"], base.view(3, 4))
    assert torch.equal(back["model"]["w_t"], base.view(3, 4).t())
    assert torch.equal(back["model"]["half"], base[6:])
    assert back["optimizer"]["state"][0]["step"].item() == 3.0
    assert back["optimizer"]["betas"] == (0.9, 0.999)
    assert back["bf16"].dtype == torch.bfloat16
    nan, inf, minus_inf, *rest = back["scalars"]
    assert nan != nan and inf == float("inf") and minus_inf == -float("inf")
    assert rest == [1.5, 7, True, None, "x"]
    assert back["$odd"] == {"$tensor": "not a tag"}
    assert back["empty"].shape == (0, 3)
    base[0] = 99.0  # what was stored is a copy, not the caller's buffer
    assert back["model"]["w"][0, 0] == 0.0


@pytest.mark.parametrize("how", ["pickle", "truncated", "garbage", "header lies"])
def test_a_checkpoint_that_is_no_tensor_file_is_refused_unread(tmp_path: Path, how: str) -> None:
    """A torch.save pickle (as older versions wrote, or as anyone can plant) is never
    unpickled: its code would run at load time."""
    path = tmp_path / contract.CHECKPOINT_FILE
    good = tensorfile.dumps(_state())
    if how == "pickle":
        torch.save(_state(), path)
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00" * 3)
    else:
        path.write_bytes((len(good) * 4).to_bytes(8, "little") + good[8:])
    with pytest.raises(DamagedCheckpoint) as err:
        RunRecord(tmp_path).load_checkpoint()
    assert "\n" not in str(err.value)
    if how == "pickle":
        assert "is a pickle" in str(err.value)


def test_a_checkpoint_without_the_optimizer_is_not_resumed(tmp_path: Path) -> None:
    """Evaluation needs only the weights; a resume also needs the optimiser and generator,
    and is refused before it starts (it used to fail the run after marking it running)."""
    checkpoint = _state()
    del checkpoint["state"]["optimizer"]
    (tmp_path / contract.CHECKPOINT_FILE).write_bytes(tensorfile.dumps(checkpoint))
    assert RunRecord(tmp_path).load_checkpoint() is not None
    with pytest.raises(DamagedCheckpoint, match="no optimizer to continue training from"):
        RunRecord(tmp_path).check_resumable()


def test_a_grid_png_over_pillows_limit_is_left_out_of_the_report(tmp_path: Path) -> None:
    """A grid PNG declaring 200 Mpx (a planted file: its pixels compress to almost nothing)
    raised Pillow's DecompressionBombError, which is no OSError, out of the report."""
    from PIL import Image

    from vaesweep.report.figures.plot_images import _read_png

    Image.new("1", (20_000, 10_000)).save(tmp_path / "bomb.png")
    assert _read_png(tmp_path / "bomb.png") is None
    Image.MAX_IMAGE_PIXELS, before = None, Image.MAX_IMAGE_PIXELS  # as the folder loader sets it
    try:
        assert _read_png(tmp_path / "bomb.png") is None
    finally:
        Image.MAX_IMAGE_PIXELS = before


@pytest.mark.parametrize("key", ["beta", "seed"])
@pytest.mark.parametrize("value", [[1], {"a": 1}, "x", None])
def test_a_stored_config_with_a_value_of_the_wrong_type_is_a_config_error(
    key: str, value: Any
) -> None:
    """`eval` rebuilds a run's config from its summary.json: `beta: [1]` there was a
    TypeError traceback."""
    from vaesweep.bridge import compose as bridge
    from vaesweep.config.from_dict import config_from_dict
    from vaesweep.errors import ConfigError

    values = bridge.compose([]).to_dict()
    values[key] = value
    with pytest.raises(ConfigError):
        config_from_dict(values)
