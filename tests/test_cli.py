"""The command line through Typer's runner, plus real subprocesses for the entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENCE_S
from typer.testing import CliRunner

from vaesweep.cli import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "sweep", "report", "show", "ls", "eval"):
        assert command in result.output


def test_command_help_wraps_prose_and_keeps_example_lines() -> None:
    """Typer's rich mode keeps a docstring's line breaks: prose is reflowed by the CLI, so a
    sentence is never cut where the source line ended; example lines stay one per line."""
    result = runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(
        line.startswith("Runs that differ only in beta") and line.endswith("one by one.")
        for line in lines
    ), result.output
    assert "vaesweep sweep beta=0.01,0.1,1" in lines
    assert not any(line.endswith(";") for line in lines)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "vaesweep 0." in result.output


def test_help_does_not_import_torch_or_hydra() -> None:
    code = (
        "import sys, runpy; sys.argv=['vaesweep','--help']\n"
        "from vaesweep.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch','hydra','pandas','matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_runs_without_factors_do_not_import_scikit_learn() -> None:
    """scikit-learn (about 1.5 s to import) is for the disentanglement metrics only: a run or
    sweep on a dataset without factors, and every command, starts without it."""
    code = (
        "import sys\n"
        "import vaesweep.cli, vaesweep.commands.sweep, vaesweep.commands.evaluate\n"
        "import vaesweep.run.job, vaesweep.run.stack_job, vaesweep.bridge.launch\n"
        "import vaesweep.disentanglement, vaesweep.evaluation.disentanglement\n"
        "print('SKLEARN', 'sklearn' in sys.modules)\n"
        "from vaesweep.disentanglement import evaluate\n"
        "print('AFTER', 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "SKLEARN False" in out.stdout and "AFTER True" in out.stdout


def test_show_prints_the_composed_config() -> None:
    result = runner.invoke(app, ["show", "beta=0.1", "model=mlp"])
    assert result.exit_code == 0, result.output
    assert "beta: 0.1" in result.output
    assert "arch: mlp" in result.output


def test_show_hydra_adds_hydras_own_settings() -> None:
    result = runner.invoke(app, ["show", "--hydra", "beta=0.1"])
    assert result.exit_code == 0, result.output
    assert "beta: 0.1" in result.output and "job_logging:" in result.output


def test_train_checks_hydras_own_settings_before_writing(outputs: Path) -> None:
    """A hydra.* setting is part of the one composition checked before the run dir exists."""
    result = runner.invoke(app, ["train", "hydra.launcher.partition=gpu", "train.progress=off"])
    assert result.exit_code == 2, result.output
    assert "hydra.launcher.partition" in result.output and "Traceback" not in result.output
    assert not outputs.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "bta=1"], "Did you mean 'beta'?"),
        (["train", "beta=-1"], "beta=-1.0 is invalid"),
        (["sweep", "beta=0.1,1", "model=nope", "--dry-run"], "no model named 'nope'"),
        (["sweep", "beta=0.1", "--jobs", "0", "--dry-run"], None),
        (["sweep", "--resume", "/no/such/sweep"], "no such directory"),
        (["train", "data=folder", "data.path=/no/such/folder", "train.progress=off"], None),
    ],
)
def test_user_errors_exit_2_with_one_line(
    args: list[str], needle: str | None, outputs: Path
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("Error")]
    assert len(error_lines) == 1 or needle is None
    assert "Traceback" not in result.output
    if needle:
        assert needle in result.output


@pytest.mark.slow
def test_train_writes_the_whole_record(outputs: Path, tiny: list[str]) -> None:
    result = runner.invoke(app, ["train", "beta=0.1", *tiny, "--name", "t"])
    assert result.exit_code == 0, result.output
    (run_dir,) = list((outputs / "runs").iterdir())
    assert run_dir.name.endswith("_t")
    for name in (
        "metrics.csv",
        "summary.json",
        "config.yaml",
        "checkpoint.pt",
        "reconstructions.png",
        "samples.png",
        "traversals.png",
        "train.log",
    ):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["beta"] == 0.1 and summary["epochs_done"] == 2


@pytest.mark.slow
def test_diverged_train_exits_1(outputs: Path, tiny: list[str]) -> None:
    result = runner.invoke(app, ["train", *tiny, "train.lr=1e6"])
    assert result.exit_code == 1, result.output
    assert "non-finite loss" in result.output


def test_sweep_dry_run_prints_the_grid_and_trains_nothing(outputs: Path) -> None:
    result = runner.invoke(
        app, ["sweep", "beta=0.01,0.1,1", "model.latent_dim=8,32", "train.epochs=3", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "6 would run" in result.output
    assert "beta=0.01,model.latent_dim=8" in result.output
    assert "fixed: train.epochs=3" in result.output
    assert not outputs.exists()


def test_sweep_header_prints_a_list_value_as_typed(outputs: Path) -> None:
    """A list is an override's value, not console markup (it printed `fixed: tracker=`)."""
    result = runner.invoke(
        app,
        [
            "sweep",
            "beta=0.1,1",
            "tracker=[tensorboard,mlflow]",
            "model=mlp",
            "model.hidden=[64,32]",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "fixed: tracker=[tensorboard,mlflow] model=mlp model.hidden=[64,32]" in result.output
    assert not outputs.exists()  # a dry run checks the MLflow store without creating it


def test_long_paths_are_printed_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path (and a command holding one) is never broken across lines, however long: users
    copy it. The runner's console is 80 columns wide."""
    root = tmp_path / ("deep_" * 12) / "outputs"
    monkeypatch.setenv("VAESWEEP_OUTPUTS", str(root))
    result = runner.invoke(app, ["sweep", "beta=0.1,1", "--dry-run", "--name", "long"])
    assert result.exit_code == 0, result.output
    assert f"-> {root / 'sweeps' / 'long'}\n" in result.output, result.output


@pytest.mark.slow
def test_ls_lists_sweeps_and_runs(outputs: Path, tiny: list[str]) -> None:
    assert runner.invoke(app, ["ls"]).exit_code == 2  # nothing yet: one clear line
    assert runner.invoke(app, ["sweep", "beta=0.1,1", *tiny, "--name", "s"]).exit_code == 0
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    assert "2 completed" in result.output and "beta" in result.output


@pytest.mark.slow
def test_real_subprocess_train_on_digits(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: two epochs on the default data."""
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(tmp_path / "out"), "PYTHONUNBUFFERED": "1"}
    exe = Path(sys.executable).with_name("vaesweep")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vaesweep"]
    proc = subprocess.run(
        [*cmd, "train", "train.epochs=2", "eval.iwae_samples=10"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = list((tmp_path / "out" / "runs").iterdir())
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + (train, val) x 2 epochs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["data"]["n_pixels"] == 64
    assert "completed" in proc.stdout


@pytest.mark.slow
def test_interrupted_train_resumes_in_place(tmp_path: Path, interrupt_cli, tiny: list[str]) -> None:
    # Held after epoch 1 (checkpoint on disk), so Ctrl-C always lands mid-run.
    overrides = [o for o in tiny if not o.startswith("train.epochs=")] + ["train.epochs=3"]
    code, out = interrupt_cli(["train", *overrides, "--name", "r"], "*_r.epoch1")
    assert code == 130, out
    (run_dir,) = list((tmp_path / "out" / "runs").glob("*_r"))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert "vaesweep train --resume" in out

    runner_env = {"VAESWEEP_OUTPUTS": str(tmp_path / "out")}
    result = runner.invoke(app, ["train", "--resume", str(run_dir)], env=runner_env)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed"] == [1]
    epochs = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 4) for _ in range(2)]
    again = runner.invoke(app, ["train", "--resume", str(run_dir)], env=runner_env)
    assert again.exit_code == 2 and "already completed" in again.output


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file names must be UTF-8")
def test_a_data_path_that_is_not_utf8_prints_under_a_strict_utf8_stdout(tmp_path: Path) -> None:
    """Under a UTF-8 locale (stdout strict, unlike the C locale's), `vaesweep sweep` echoing a
    data.path with bytes that are not UTF-8 ended in a UnicodeEncodeError traceback."""
    from PIL import Image

    folders = [tmp_path / os.fsdecode(b"caf\xe9"), tmp_path / "plain"]
    for folder in folders:
        folder.mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * i, 2, 3)).save(folder / f"{i}.png")
    env = {
        **os.environ,
        "PYTHONIOENCODING": "utf-8",  # strict, as under en_US.UTF-8
        "COLUMNS": "500",  # the table in full: tmp_path is long
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path]),
        "VAESWEEP_OUTPUTS": str(tmp_path / "out"),
        "VAESWEEP_CACHE_DIR": str(tmp_path / "cache"),
    }
    paths = ",".join(f"'{f}'" for f in folders)
    args = ["sweep", "data=folder", f"data.path={paths}", "data.image_size=8", "--dry-run"]
    proc = subprocess.run(
        [sys.executable, "-m", "vaesweep", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=PATIENCE_S,
    )
    out = proc.stdout.decode("utf-8") + proc.stderr.decode("utf-8")  # all of it UTF-8
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert "caf\\xe9" in out and "data.path=_" in out and "_caf_xe9_" in out


def test_an_error_naming_a_path_that_is_not_utf8_shows_its_bytes(tmp_path: Path) -> None:
    """The IDX, CIFAR and dSprites messages built with str(path) showed b"\\xff" as
    "\\udcff"; every error line now shows such bytes as \\xNN, as printable() does."""
    root = os.fsdecode(b"bad\xffroot")
    for data in ("mnist", "cifar10"):
        result = CliRunner().invoke(app, ["show", f"data={data}", f"data.root='{root}'"])
        assert result.exit_code == 0, result.output  # show composes; it loads nothing
        result = CliRunner().invoke(
            app,
            ["train", f"data={data}", f"data.root='{root}'", "--outputs", str(tmp_path / "o")],
        )
        assert result.exit_code == 2, result.output
        assert "bad\\xffroot" in result.output and "udcff" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--name", "${oc.env:HOME}"],
        ["sweep", "beta=0.1,1", "--name", "${now:%H}"],
        ["train", "hydra.output_subdir=../../../escaped"],
        ["train", "hydra.job_logging.handlers.file.filename=/tmp/escaped.log"],
        ["sweep", "beta=0.1,1", "hydra.hydra_logging.root.level=DEBUG"],
        ["sweep", "beta=0.1,1", "hydra.launcher.submitit_folder=/tmp/anywhere"],
    ],
)
def test_names_and_hydra_settings_that_would_write_elsewhere_are_refused(
    tmp_path: Path, args: list[str]
) -> None:
    """A --name with ${...} was resolved by Hydra inside hydra.run.dir (${oc.env:X} wrote a
    whole run outside outputs/), and hydra.* settings naming files wrote where they said."""
    out = tmp_path / "outputs"
    result = CliRunner().invoke(app, [*args, "--outputs", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    assert not (tmp_path / "escaped").exists()


def test_report_out_into_a_record_is_refused(tmp_path: Path) -> None:
    from vaesweep.testing.fabricate import fabricate_sweep

    sweep = tmp_path / "sw"
    fabricate_sweep(sweep, [0.1, 1.0], images=False)
    before = (sweep / "beta=1" / "summary.json").read_bytes()
    for out in (sweep / "beta=1", sweep / "beta=1" / "sub", sweep):
        result = CliRunner().invoke(app, ["report", str(sweep), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "inside the run" in result.output or "is a sweep's own folder" in result.output
    assert (sweep / "beta=1" / "summary.json").read_bytes() == before
    assert not (sweep / "beta=1" / "index.html").exists() and not (sweep / "index.html").exists()
