"""Stacked sweeps through the CLI: grouping, the dry-run table, members = single runs, kill/resume."""

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
from typer.testing import CliRunner

from vaesweep.cli import app

runner = CliRunner()


def _index(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


#: Faster validation for the kill/resume test (the default draws stack as well).
ONE_DRAW = ["eval.noise_draws=1", "eval.grad_draws=1"]


def _epochs(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(int(r["epoch"]), r["split"]) for r in csv.DictReader(f)]


def test_dry_run_shows_each_runs_stack(outputs: Path) -> None:
    # The default evaluation (several noise and gradient draws) and augmentation stack.
    for name, extra in (("d", []), ("a", ["data.augment_flip=true", "data.augment_crop=0.8"])):
        result = runner.invoke(
            app, ["sweep", "beta=0.01,0.1,1", *extra, "--dry-run", "--name", name]
        )
        assert result.exit_code == 0, result.output
        assert "3 would run in 1 stack " in result.output
        assert "stack" in result.output.splitlines()[1]
        assert "not stacked" not in result.output
    grid = ["beta=0.01,0.1,1", "seed=0,1", "model.latent_dim=4,8", "--dry-run"]
    result = runner.invoke(app, ["sweep", *grid, "--stack-size", "2", "--name", "e"])
    assert result.exit_code == 0, result.output
    assert "12 would run in 6 stacks" in result.output
    result = runner.invoke(app, ["sweep", "beta=0.01,0.1,1", "--dry-run", "--no-stack"])
    assert result.exit_code == 0 and "stack" not in result.output, result.output
    # Nothing stackable is swept: every run trains alone.
    result = runner.invoke(app, ["sweep", "model.latent_dim=4,8", "--dry-run"])
    assert result.exit_code == 0 and "stack" not in result.output, result.output
    # bf16 stacks; fp16 (per-run loss scaling) and resconv train alone, with the reason.
    result = runner.invoke(app, ["sweep", "beta=0.1,1", "train.precision=bf16", "--dry-run"])
    assert result.exit_code == 0 and "2 would run in 1 stack " in result.output, result.output
    for extra, why in (("train.precision=fp16", "fp16"), ("model=resconv", "resconv")):
        result = runner.invoke(app, ["sweep", "beta=0.1,1", extra, "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "not stacked" in result.output and why in result.output.split("not stacked")[1]
    assert not outputs.exists() or not any(outputs.rglob("sweep.json"))


@pytest.mark.slow
def test_stacked_members_match_runs_trained_alone(outputs: Path, tiny: list[str]) -> None:
    grid = [*tiny, "beta=0.1,1", "train.batch_size=32,64"]
    assert runner.invoke(app, ["sweep", *grid, "--name", "st"]).exit_code == 0
    assert runner.invoke(app, ["sweep", *grid, "--name", "one", "--no-stack"]).exit_code == 0
    stacked, alone = outputs / "sweeps" / "st", outputs / "sweeps" / "one"
    plan = json.loads((stacked / "sweep.json").read_text())
    assert [r["stack"] for r in plan["runs"]] == [0, 1, 0, 1]
    assert (stacked / ".stacks").is_dir() and not (alone / ".stacks").exists()
    rows, ref = _index(stacked), _index(alone)
    assert [r["status"] for r in rows] == ["completed"] * 4
    for key in ("val_elbo", "val_kl", "val_mse", "iwae_nll"):
        assert [float(r[key]) for r in rows] == pytest.approx(
            [float(r[key]) for r in ref], rel=1e-3
        ), key
    member = stacked / "beta=1,train.batch_size=64"
    summary = json.loads((member / "summary.json").read_text())
    assert summary["stack"] == ["beta=0.1,train.batch_size=64", "beta=1,train.batch_size=64"]
    assert "beta=1" in summary["overrides"] and "train.batch_size=64" in summary["overrides"]
    assert (member / "train.log").read_text().count("epoch ") == 2


@pytest.mark.slow
def test_killed_stacked_sweep_resumes_members_exactly_once(tmp_path: Path) -> None:
    """Stack 0 finishes, stack 1 is killed mid-run: resume leaves stack 0 alone and
    continues stack 1's members from their checkpoints; no epoch is recorded twice."""
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
    sweep_dir = tmp_path / "out" / "sweeps" / "k"
    epochs = 12
    args = [
        "beta=0.001,0.01,0.1,1",
        f"train.epochs={epochs}",
        "data.limit=300",
        "model.width=8",
        "model.hidden_dim=32",
        "train.progress=off",
        "eval.iwae_samples=5",
        "eval.mi_images=100",
        *ONE_DRAW,
        "--stack-size",
        "2",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaesweep", "sweep", *args, "--name", "k"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    done = [sweep_dir / "beta=0.001", sweep_dir / "beta=0.01"]
    killed = [sweep_dir / "beta=0.1", sweep_dir / "beta=1"]

    def mid_second_stack() -> bool:
        try:
            finished = all(
                json.loads((d / "summary.json").read_text())["status"] == "completed" for d in done
            )
            # On a CPU the stack's members train as parts side by side, not in lockstep:
            # each must have its first checkpoint before the kill.
            started = all((d / "checkpoint.pt").exists() for d in killed)
            return finished and started and len(_epochs(killed[1])) >= 4
        except (OSError, ValueError, KeyError):
            return False

    deadline = time.monotonic() + 600
    while not mid_second_stack():
        assert proc.poll() is None, "sweep ended before it could be interrupted"
        assert time.monotonic() < deadline, "sweep did not reach the second stack"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [json.loads((d / "summary.json").read_text())["status"] for d in killed] == [
        "running",
        "running",
    ]
    before = {d: (d / "metrics.csv").stat().st_mtime_ns for d in done}

    resumed = subprocess.run(
        [sys.executable, "-m", "vaesweep", "sweep", "--resume", str(sweep_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = _index(sweep_dir)
    assert [r["status"] for r in rows] == ["completed"] * 4
    for d in done:
        assert (d / "metrics.csv").stat().st_mtime_ns == before[d]
        assert "resumed" not in json.loads((d / "summary.json").read_text())
    for d in killed:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["resumed"] and 1 <= summary["resumed"][0] < epochs
    for r in rows:
        seen = _epochs(sweep_dir / r["run"])
        assert sorted(seen) == [(e, s) for e in range(1, epochs + 1) for s in ("train", "val")]
