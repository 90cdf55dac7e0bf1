"""A user's mistake on the command line is one ``Error:`` line on stderr and exit code 2: config
files, launcher profiles, sweep grammar, conflicting options, paths, and what ``ls`` prints."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vaesweep.cli import app

runner = CliRunner()


def _one_error_line(result: Any, *needles: str) -> str:
    """The result is exit 2 with exactly one ``Error:`` line, no traceback and no panel."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output and "╭" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _config_dir(tmp_path: Path, relative: str, text: str) -> Path:
    folder = tmp_path / "conf"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    (folder / relative).write_text(text)
    return folder


# ----------------------------------------------------------- 1. YAML files of a --config-dir

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{k}: &{k} [{','.join([f'*{p}'] * 9)}]"
        for p, k in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("arch: mlp\narch: conv\n", ["mine.yaml, line 2", "the key 'arch' appears twice"]),
        ("a: &a [1, *a]\n", ["mine.yaml, line 1", "an anchor is used inside itself"]),
        (BILLION_LAUGHS, ["mine.yaml", "expand it to", "values"]),
    ],
    ids=["duplicate-key", "recursive-anchor", "billion-laughs"],
)
def test_a_config_file_hydra_cannot_take_is_one_line(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    """A duplicate key was OmegaConf's ConstructorError traceback; an alias bomb or an anchor
    inside itself made Hydra expand it until memory (or the recursion limit) ran out."""
    folder = _config_dir(tmp_path, "model/mine.yaml", text)
    result = runner.invoke(app, ["show", "model=mine", "--config-dir", str(folder)])
    _one_error_line(result, *needles)


def test_plain_anchors_in_a_config_file_still_work(tmp_path: Path) -> None:
    text = "arch: mlp\nhidden: &h [64, 32]\nlatent_dim: 4\n"
    folder = _config_dir(tmp_path, "model/mine.yaml", text)
    result = runner.invoke(app, ["show", "model=mine", "--config-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "arch: mlp" in result.output


# -------------------------------------------------------------- 2. launcher profile targets


@pytest.mark.parametrize("target", ["collections.OrderedDict", "no_such_module.Launcher"])
@pytest.mark.parametrize("how", ["--launcher", "override"])
def test_a_launcher_profile_that_names_no_launcher_fails_the_dry_run(
    tmp_path: Path, target: str, how: str
) -> None:
    """A _target_ that exists but is no Hydra launcher passed --dry-run and failed with a
    traceback on the real launch; given as hydra/launcher=NAME it was not checked at all."""
    folder = _config_dir(tmp_path, "hydra/launcher/site.yaml", f"_target_: {target}\n")
    pick = ["--launcher", "site"] if how == "--launcher" else ["hydra/launcher=site"]
    out = tmp_path / "out"
    args = ["sweep", "beta=0.1,1", *pick, "--config-dir", str(folder), "--dry-run"]
    result = runner.invoke(app, [*args, "--outputs", str(out)])
    _one_error_line(result, f"hydra.launcher._target_={target} is not a launcher class")
    assert not out.exists()


def test_a_real_launcher_profile_passes_the_dry_run(tmp_path: Path) -> None:
    target = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    folder = _config_dir(tmp_path, "hydra/launcher/site.yaml", f"_target_: {target}\n")
    args = ["sweep", "beta=0.1,1", "-l", "site", "--config-dir", str(folder), "--dry-run"]
    result = runner.invoke(app, [*args, "--outputs", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------- 3, 4. sweep grammar and size


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [
        ("model=glob(zz*)", "'model=glob(zz*)' gives no values (options: conv, mlp, resconv)"),
        ("seed=range(5,0)", "'seed=range(5,0)' gives no values"),
        ("beta=range(0,1,0.0)", "has a step of 0"),
    ],
)
def test_a_sweep_with_no_values_is_one_line(outputs: Path, sweep: str, needle: str) -> None:
    """glob() matching nothing ended in an IndexError traceback; a float range with step 0
    never ended."""
    _one_error_line(runner.invoke(app, ["sweep", sweep, "--dry-run"]), needle)
    assert not outputs.exists()


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        (["seed=range(100000)"], "100,000"),
        (["seed=shuffle(range(1000000000))"], "1,000,000,000"),
        (
            [
                "beta=" + ",".join(map(str, range(30))),
                "seed=range(30)",
                "kl.epochs=1,2,3,4,5,6,7,8,9,10,11,12",
            ],
            "10,800",
        ),
    ],
)
def test_a_grid_over_the_maximum_is_refused_before_it_is_built(
    outputs: Path, args: list[str], runs: str
) -> None:
    from vaesweep.bridge.grid import MAX_RUNS

    result = runner.invoke(app, ["sweep", *args, "--dry-run"])
    _one_error_line(result, f"would be {runs} runs", f"at most {MAX_RUNS:,}")


def test_the_run_limit_is_one_named_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    from vaesweep.bridge import grid
    from vaesweep.errors import UserError

    monkeypatch.setattr(grid, "MAX_RUNS", 4)
    assert len(grid.expand_grid(["beta=0.1,1", "seed=0,1"]).jobs) == 4
    with pytest.raises(UserError, match=r"would be 6 runs \(3 beta x 2 seed\); .* at most 4"):
        grid.expand_grid(["beta=0.1,1,10", "seed=0,1"])


# ---------------------------------------------------------------- 5. the file system says no


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.EPERM, "choose a folder you can write"),
        (errno.ENAMETOOLONG, "shorter --outputs or --name"),
        (errno.ELOOP, "symbolic link"),
        (errno.ENOTDIR, "a file stands where"),
    ],
)
def test_a_refused_path_is_one_line_naming_it(
    outputs: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    from vaesweep.commands import sweep as sweep_command

    where = str(outputs / "sweeps" / "s")

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code), where)

    monkeypatch.setattr(sweep_command, "sweep", refused)
    result = runner.invoke(app, ["sweep", "beta=0.1,1", "--name", "s"])
    _one_error_line(result, where, os.strerror(code), hint)


def test_an_os_error_that_is_vaesweeps_own_keeps_its_traceback(
    outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOENT on a file vaesweep itself made, or an error that names no path, is a bug."""
    from vaesweep.commands import sweep as sweep_command

    for err in (OSError(errno.ENOENT, "No such file", "x"), OSError(errno.EPERM, "nope")):

        def fail(*args: Any, err: OSError = err, **kwargs: Any) -> None:
            raise err

        monkeypatch.setattr(sweep_command, "sweep", fail)
        result = runner.invoke(app, ["sweep", "beta=0.1,1", "--name", "s"])
        assert result.exit_code == 1 and result.exception is err


def test_a_symlink_loop_in_outputs_is_one_line(tmp_path: Path) -> None:
    """train resolved the run's folder (a RuntimeError from Path.resolve) and sweep made it
    (an OSError, ELOOP): both were tracebacks."""
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    out = str(tmp_path / "loop1" / "out")
    result = runner.invoke(app, ["train", "train.epochs=1", "--outputs", out])
    _one_error_line(result, "Too many levels of symbolic links", str(tmp_path / "loop1"))


# ----------------------------------------------------------- 6. overrides that contradict


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "beta=0.1,1", "beta=5", "--dry-run"],
        ["sweep", "beta=0.1,1", "seed=0,1", "+beta=2", "--dry-run"],
        ["train", "beta=1", "beta=2"],
        ["show", "model=mlp", "model=conv"],
    ],
)
def test_a_key_given_twice_is_refused(outputs: Path, args: list[str]) -> None:
    """Hydra took the last value without a word: `beta=0.1,1 beta=5` swept nothing."""
    _one_error_line(runner.invoke(app, args), "is given twice")
    assert not outputs.exists()


def test_no_stack_with_a_stack_size_is_refused(outputs: Path) -> None:
    args = ["sweep", "beta=0.1,1", "--no-stack", "--stack-size", "3", "--dry-run"]
    _one_error_line(runner.invoke(app, args), "--no-stack and --stack-size 3")


# --------------------------------------------------------------------- 7. usage mistakes


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--bogus"], ["No such option: --bogus", "see vaesweep train --help"]),
        (["eval"], ["Missing argument", "see vaesweep eval --help"]),
        (["bogus"], ["No such command 'bogus'", "see vaesweep --help"]),
        (["--bogus"], ["No such option: --bogus", "see vaesweep --help"]),
        (["sweep", "--jobs", "abc"], ["'--jobs'", "see vaesweep sweep --help"]),
        (["report", "-f"], ["requires an argument", "see vaesweep report --help"]),
    ],
)
def test_usage_errors_are_one_line_with_where_to_look(args: list[str], needles: list[str]) -> None:
    """Typer's rich mode drew a boxed panel over several lines."""
    _one_error_line(runner.invoke(app, args), *needles)


def test_no_arguments_still_prints_the_help() -> None:
    result = runner.invoke(app, [])
    assert "Usage" in result.output and "sweep" in result.output
    assert "Error" not in result.output


# ------------------------------------------------------------------------ 8. what ls prints

ODD = "[red]odd\x1b[31m\u202e"


def test_ls_prints_names_and_stored_text_as_text(outputs: Path) -> None:
    """A sweep named with markup, or a stored status holding an ANSI escape, reached the
    terminal as markup (or crashed it) and as a raw escape sequence."""
    from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep

    sweep = outputs / "sweeps" / f"s{ODD}"
    (run,) = fabricate_sweep(sweep, [0.1], images=False)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": f"done{ODD}"}))
    single = outputs / "runs" / f"r{ODD}"
    fabricate_run(single, beta=0.1, images=False)
    summary = json.loads((single / "summary.json").read_text())
    (single / "summary.json").write_text(json.dumps({**summary, "status": f"ok{ODD}"}))

    result = runner.invoke(app, ["ls"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    shown = "[red]odd\\x1b[31m\\u202e"
    for text in (f"s{shown}", f"done{shown}", f"r{shown}", f"ok{shown}"):
        assert text in result.output, result.output


# ------------------------------------------------------------------- 9. an empty path option


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "beta=0.1,1", "--dry-run", "--outputs", ""],
        ["ls", "--outputs", ""],
        ["train", "--outputs", ""],
        ["show", "--config-dir", ""],
        ["report", "--out", ""],
        ["sweep", "--resume", ""],
    ],
)
def test_an_empty_path_option_is_refused(outputs: Path, args: list[str]) -> None:
    """Path('') is '.': `--outputs ''` wrote the results into the current folder."""
    _one_error_line(runner.invoke(app, args), "is empty; name a folder")
    assert not (outputs.parent / "sweeps").exists() and not (outputs.parent / "runs").exists()


# ------------------------------------------------- 10. deletions, and "missing" that is not


@pytest.mark.parametrize(
    "args",
    [
        ["show", "~beta"],
        ["train", "~beta"],
        ["sweep", "~model.latent_dim", "beta=0.1,1", "--dry-run"],
        ["show", "~model"],
    ],
)
def test_deleting_a_key_every_run_needs_is_refused(outputs: Path, args: list[str]) -> None:
    """`vaesweep train '~beta'` trained with the schema's beta=1.0 without a word."""
    key = args[1].lstrip("~")
    _one_error_line(runner.invoke(app, args), f"'~{key}' would delete {key}")
    assert not outputs.exists()


def test_a_folder_that_is_there_but_unusable_is_not_called_missing(tmp_path: Path) -> None:
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "file").write_text("")
    loop, file = str(tmp_path / "loop1"), str(tmp_path / "file")
    for args in (
        ["show", "--config-dir", loop],
        ["sweep", "--resume", loop],
        ["ls", "--outputs", loop],
    ):
        line = _one_error_line(runner.invoke(app, args), "Too many levels of symbolic links")
        assert "does not exist" not in line and "no such" not in line
    _one_error_line(runner.invoke(app, ["show", "--config-dir", file]), "is a file")
    _one_error_line(runner.invoke(app, ["ls", "--outputs", file]), "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_folder_says_so(tmp_path: Path) -> None:
    from vaesweep.errors import folder_problem

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert folder_problem(locked).startswith("cannot be read (Permission denied")
    finally:
        locked.chmod(0o700)
    assert folder_problem(tmp_path / "nowhere") == "does not exist"
    assert folder_problem(tmp_path) == ""


def test_sweep_help_states_the_run_limit() -> None:
    from vaesweep.bridge.grid import MAX_RUNS

    result = runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert f"at most {MAX_RUNS:,} runs" in result.output
