"""Sweeps end to end on tiny data: launchers, failure isolation, resume after a kill, the lock."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PATIENCE_S, Hold
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.record.sweep_lock import SweepLock

runner = CliRunner()


def _index(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def _epochs(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(r["epoch"]), r["split"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("launcher_args", [[], ["--jobs", "2"]], ids=["basic", "jobs2"])
@pytest.mark.slow
def test_three_run_sweep(outputs: Path, tiny: list[str], launcher_args: list[str]) -> None:
    result = runner.invoke(app, ["sweep", "beta=0.01,0.1,1", *tiny, "--name", "s", *launcher_args])
    assert result.exit_code == 0, result.output
    sweep_dir = outputs / "sweeps" / "s"
    rows = _index(sweep_dir)
    assert [r["run"] for r in rows] == ["beta=0.01", "beta=0.1", "beta=1"]
    assert [r["status"] for r in rows] == ["completed"] * 3
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["swept_keys"] == ["beta"]
    if launcher_args:
        assert plan["launcher"] == "joblib" and plan["threads_per_run"] >= 1
    for r in rows:
        summary = json.loads((sweep_dir / r["run"] / "summary.json").read_text())
        assert summary["beta"] == float(r["beta"])
        assert _epochs(sweep_dir / r["run"]) == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    # Lower beta transmits more information: rate falls monotonically with beta.
    kls = [float(r["val_kl"]) for r in rows]
    assert kls[0] > kls[1] > kls[2]


@pytest.mark.slow
def test_parallel_runs_reproduce_sequential_numbers(outputs: Path, tiny: list[str]) -> None:
    for name, extra in (("seq", []), ("par", ["--jobs", "2"])):
        assert (
            runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", name, *extra]).exit_code
            == 0
        )
    seq, par = _index(outputs / "sweeps" / "seq"), _index(outputs / "sweeps" / "par")
    # Same seeds, same numbers; only the thread count (2 vs 1 per run) changes float sums.
    assert [float(r["val_elbo"]) for r in par] == pytest.approx(
        [float(r["val_elbo"]) for r in seq], rel=1e-6
    )


def _with_epochs(overrides: list[str], epochs: int) -> list[str]:
    return [o for o in overrides if not o.startswith("train.epochs=")] + [f"train.epochs={epochs}"]


def _processes_with_env(entry: str) -> list[int]:
    """PIDs of live processes whose environment holds ``entry`` (``KEY=value``)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.slow
def test_parallel_driver_stays_light(tmp_path: Path, tiny: list[str]) -> None:
    """The --jobs driver imports no torch (it receives plain summaries from its workers),
    and its worker processes end with the sweep."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('DRIVER_TORCH', 'torch' in sys.modules))\n"
        "from vaesweep.cli import main\n"
        f"sys.argv = ['vaesweep', 'sweep', 'beta=0.1,1', '--jobs', '2', '--name', 'p', '--no-stack', *{tiny!r}]\n"
        "main()\n"
    )
    marker = f"VAESWEEP_OUTPUTS={tmp_path / 'out'}"
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(tmp_path / "out")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DRIVER_TORCH False" in proc.stdout
    assert [r["status"] for r in _index(tmp_path / "out" / "sweeps" / "p")] == ["completed"] * 2
    deadline = time.monotonic() + PATIENCE_S
    while _processes_with_env(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with_env(marker) == [], "joblib workers outlived the sweep"


@pytest.mark.slow
def test_submitit_local_launcher(outputs: Path, tiny: list[str]) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = runner.invoke(
        app, ["sweep", "beta=0.1,1", *tiny, "--name", "sub", "--launcher", "submitit_local"]
    )
    assert result.exit_code == 0, result.output
    sweep_dir = outputs / "sweeps" / "sub"
    assert [r["status"] for r in _index(sweep_dir)] == ["completed", "completed"]
    assert (sweep_dir / ".submitit").is_dir()


@pytest.mark.slow
def test_a_diverging_run_does_not_stop_the_others(outputs: Path, tiny: list[str]) -> None:
    result = runner.invoke(app, ["sweep", "train.lr=0.001,1e6,0.002", *tiny, "--name", "d"])
    assert result.exit_code == 1, result.output
    rows = {r["run"]: r for r in _index(outputs / "sweeps" / "d")}
    assert rows["train.lr=1000000.0"]["status"] == "diverged"
    assert "non-finite loss" in rows["train.lr=1000000.0"]["error"]
    assert rows["train.lr=0.001"]["status"] == rows["train.lr=0.002"]["status"] == "completed"


@pytest.mark.slow
def test_a_run_that_cannot_load_its_data_stops_every_launcher_first(
    outputs: Path, tiny: list[str]
) -> None:
    missing = outputs.parent / "missing"
    # The data of every setting is checked before anything is written (issue 12 item 8), for
    # every launcher: in this process (basic), and in a short-lived child process for a --jobs
    # or cluster driver, which never holds torch itself. (A run failing mid-sweep is recorded
    # and the others go on: test_a_diverging_run_does_not_stop_the_others.)
    args = ["sweep", "data=digits,folder", f"data.path={missing}", *tiny, "--name", "f"]
    for launcher in ([], ["--jobs", "2"]):
        result = runner.invoke(app, [*args, *launcher])
        assert result.exit_code == 2 and str(missing) in result.output, result.output
        assert not (outputs / "sweeps" / "f").exists()


@pytest.mark.slow
def test_existing_sweep_name_is_refused(outputs: Path, tiny: list[str]) -> None:
    assert runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", "x"]).exit_code == 0
    result = runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", "x"])
    assert result.exit_code == 2 and "--resume" in result.output


def test_lock_refuses_a_second_sweep(outputs: Path, tiny: list[str]) -> None:
    sweep_dir = outputs / "sweeps" / "locked"
    with SweepLock(sweep_dir):
        result = runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", "locked"])
    assert result.exit_code == 2
    assert "is in use by another vaesweep" in result.output
    assert f"pid {os.getpid()}" in result.output


@pytest.mark.slow
def test_resume_after_sigkill_finishes_every_run_exactly_once(
    tmp_path: Path, hold: Hold, tiny: list[str]
) -> None:
    """Kill the sweep process mid-run, resume, and check nothing is lost or done twice."""
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
    sweep_dir = tmp_path / "out" / "sweeps" / "k"
    args = ["beta=0.01,0.1,1", *_with_epochs(tiny, 4)]
    proc = subprocess.Popen(
        # One run per process; tests/test_stack_sweep.py kills and resumes a stacked sweep.
        [sys.executable, "-m", "vaesweep", "sweep", *args, "--name", "k", "--no-stack"],
        cwd=tmp_path,
        env={**env, **hold.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first, second = sweep_dir / "beta=0.01", sweep_dir / "beta=0.1"
    try:
        # Step the sweep epoch by epoch until the second run is held after its epoch 2
        # (the first run has completed by then: the basic launcher runs them in turn).
        while (marker := hold.next_marker(proc)) != "beta=0.1.epoch2":
            hold.release(marker)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads((first / "summary.json").read_text())["status"] == "completed"
    killed_status = json.loads((second / "summary.json").read_text())["status"]
    assert killed_status == "running"
    first_csv = (first / "metrics.csv").read_bytes()
    first_mtime = (first / "metrics.csv").stat().st_mtime_ns

    resumed = subprocess.run(
        [sys.executable, "-m", "vaesweep", "sweep", "--resume", str(sweep_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = _index(sweep_dir)
    assert [r["status"] for r in rows] == ["completed"] * 3
    # The completed run was neither redone nor touched.
    assert (first / "metrics.csv").read_bytes() == first_csv
    assert (first / "metrics.csv").stat().st_mtime_ns == first_mtime
    assert "resumed" not in json.loads((first / "summary.json").read_text())
    # The interrupted run continued from its checkpoint, and no epoch appears twice.
    summary = json.loads((second / "summary.json").read_text())
    assert summary["resumed"] == [2]
    for run in rows:
        epochs = _epochs(sweep_dir / run["run"])
        assert len(epochs) == len(set(epochs)) == 8
        assert sorted(epochs) == [(e, s) for e in range(1, 5) for s in ("train", "val")]
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert len(plan["resumed"]) == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(
    tmp_path: Path, interrupt_cli, tiny: list[str]
) -> None:
    sweep_dir = tmp_path / "out" / "sweeps" / "i"
    code, out = interrupt_cli(
        ["sweep", "beta=0.1,1", *tiny, "--name", "i", "--no-stack"], "beta=0.1.epoch1"
    )
    assert code == 130, out
    assert f"vaesweep sweep --resume {sweep_dir}" in out.replace("\n", "")
    assert "Traceback" not in out
    assert [r["status"] for r in _index(sweep_dir)] == ["interrupted", "pending"]


@pytest.mark.slow
def test_a_stop_after_every_run_finished_is_a_finished_sweep(
    outputs: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM) handled once every run had completed, e.g. while the launcher
    wound down: it printed "Interrupted ... --resume" and exited 130 with nothing to resume."""
    import vaesweep.commands.sweep as module

    launch = module._launch

    def launch_then_stop(*args: object, **kwargs: object) -> None:
        launch(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # the stop arrives after the last run completed

    monkeypatch.setattr(module, "_launch", launch_then_stop)
    result = runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", "late", "--no-stack"])
    assert result.exit_code == 0, result.output
    assert "Interrupted" not in result.output and "--resume" not in result.output
    assert "Stopped after every run had finished (2 of 2)" in result.output
    sweep_dir = outputs / "sweeps" / "late"
    assert [r["status"] for r in _index(sweep_dir)] == ["completed", "completed"]


@pytest.mark.slow
def test_config_dir_adds_options_and_launcher_profiles(outputs: Path, tiny: list[str]) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    conf = outputs.parent / "myconf"
    (conf / "hydra" / "launcher").mkdir(parents=True)
    (conf / "data").mkdir()
    (conf / "hydra" / "launcher" / "mysite.yaml").write_text(
        "defaults:\n  - submitit_local\n  - _self_\ntimeout_min: 30\n"
    )
    (conf / "data" / "fewdigits.yaml").write_text("name: digits\nval_fraction: 0.25\n")
    args = ["sweep", "beta=0.1,1", "data=fewdigits", *tiny, "--config-dir", str(conf)]
    result = runner.invoke(app, [*args, "--launcher", "nosuchsite", "--name", "bad"])
    assert result.exit_code == 2 and "launcher 'nosuchsite' is not available" in result.output
    assert not (outputs / "sweeps" / "bad").exists()
    result = runner.invoke(app, [*args, "--launcher", "mysite", "--name", "site"])
    assert result.exit_code == 0, result.output
    sweep_dir = outputs / "sweeps" / "site"
    assert (sweep_dir / ".submitit").is_dir()
    summary = json.loads((sweep_dir / "beta=0.1" / "summary.json").read_text())
    assert summary["data"]["n_val"] == 100  # 25% of the 400 images the tiny settings keep


@pytest.mark.slow
def test_a_stop_after_the_run_finished_is_a_finished_train(
    outputs: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vaesweep train` said "Interrupted; ... Continue with: vaesweep train --resume" (exit
    130) for a stop handled after its run had completed; --resume then refused it."""
    from vaesweep.bridge import launch as bridge_launch

    launch = bridge_launch.launch_job

    def launch_then_stop(*args: object, **kwargs: object) -> list[object]:
        launch(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # the stop arrives after the run completed

    monkeypatch.setattr(bridge_launch, "launch_job", launch_then_stop)
    result = runner.invoke(app, ["train", *tiny, "--name", "late"])
    assert result.exit_code == 0, result.output
    assert "Interrupted" not in result.output and "--resume" not in result.output
    assert "Stopped after the run had finished" in result.output
    (run_dir,) = (outputs / "runs").glob("*_late")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
