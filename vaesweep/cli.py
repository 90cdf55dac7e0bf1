"""The ``vaesweep`` command line: parse, call :mod:`vaesweep.commands`, exit with a meaningful code.

Exit codes: 0 success; 1 a run diverged or failed; 2 bad input (one line on stderr saying what
was wrong and what would be right); 130 interrupted. Heavy modules (torch, Hydra, pandas,
matplotlib) are imported inside the commands so ``vaesweep --help`` stays fast.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated

import typer

from vaesweep import __version__
from vaesweep.cli_failures import OneLineUsageErrors
from vaesweep.cli_failures import console as _console
from vaesweep.cli_failures import fail as _fail
from vaesweep.cli_failures import run_command as _run_command
from vaesweep.config.stacking import DEFAULT_STACK_SIZE, GPU_STACK_SIZE
from vaesweep.cpus import spin_briefly
from vaesweep.errors import UserError

app = typer.Typer(
    name="vaesweep",
    cls=OneLineUsageErrors,
    help="Sweep the KL weight (beta) of a VAE and see, with evidence, what it does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Hydra overrides, e.g. beta=0.1 data=fashion_mnist model.latent_dim=32 "
        "train.epochs=10 (see `vaesweep show`).",
        show_default=False,
    ),
]


def _folder(value: str) -> Path:
    """A path option's value: ``''`` is refused (``Path('')`` is ``.``, so ``--outputs ''``, or
    an unset shell variable, wrote results into whatever folder the command ran in)."""
    if not value.strip():
        raise typer.BadParameter("is empty; name a folder")
    return Path(value)


ConfigDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--config-dir",
        parser=_folder,
        metavar="DIR",
        help="Extra folder of configs searched before the defaults "
        "(e.g. your hydra/launcher/<site>.yaml). Also $VAESWEEP_CONFIG_DIR.",
    ),
]
Outputs = Annotated[
    Path | None,
    typer.Option(
        "--outputs",
        parser=_folder,
        metavar="DIR",
        help="Root of all results (default $VAESWEEP_OUTPUTS or ./outputs).",
    ),
]
Launcher = Annotated[
    str,
    typer.Option(
        "--launcher",
        "-l",
        help="basic (sequential), joblib, submitit_local, slurm, "
        "or any hydra/launcher config in a --config-dir.",
    ),
]

SweepLauncher = Annotated[
    str | None,
    typer.Option(
        "--launcher",
        "-l",
        help="basic (sequential; the default), joblib, submitit_local, slurm, or any "
        "hydra/launcher config in a --config-dir. --resume uses the sweep's own unless given.",
        show_default=False,
    ),
]


def _config_dirs(dirs: list[Path] | None) -> list[Path]:
    import os

    out = list(dirs or [])
    env = os.environ.get("VAESWEEP_CONFIG_DIR")
    if env:
        out += [Path(p) for p in env.split(os.pathsep) if p]
    return out


def _overrides(overrides: list[str] | None) -> list[str]:
    from vaesweep.bridge.overrides import normalize_overrides, reject_repeated_keys

    out = normalize_overrides(overrides or [])
    reject_repeated_keys(out)
    return out


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaesweep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train VAEs across a grid of KL weights and report what beta does."""


# ----------------------------------------------------------------------------- show


@app.command()
def show(
    overrides: Overrides = None,
    config_dir: ConfigDirs = None,
    hydra: Annotated[bool, typer.Option("--hydra", help="Include Hydra's own settings.")] = False,
) -> None:
    """Print the composed, validated config of one run (no training)."""

    def go() -> None:
        from vaesweep.bridge.compose import show as show_config

        dirs = _config_dirs(config_dir)
        typer.echo(show_config(_overrides(overrides), dirs, with_hydra=hydra).rstrip())

    _run_command(go)


# ----------------------------------------------------------------------------- train


@app.command()
def train(
    overrides: Overrides = None,
    name: Annotated[str | None, typer.Option("--name", help="Suffix of the run directory.")] = None,
    launcher: Launcher = "basic",
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            parser=_folder,
            metavar="DIR",
            help="Continue an interrupted run in this directory.",
        ),
    ] = None,
    config_dir: ConfigDirs = None,
    outputs: Outputs = None,
) -> None:
    """Train one VAE; writes metrics.csv, summary.json, checkpoint and image grids.

    Example: vaesweep train beta=0.1 data=fashion_mnist train.epochs=10
    """

    def go() -> None:
        from vaesweep.commands import terminal_tables as tables
        from vaesweep.commands.launching import LaunchOptions
        from vaesweep.commands.train import train as train_run
        from vaesweep.record import contract

        console = _console()
        opts = LaunchOptions(launcher, 1, _config_dirs(config_dir), outputs)
        summary = train_run(_overrides(overrides), opts, name, console, resume)
        status = summary.get("status")
        if status == contract.FAILED and summary.get("error_kind") == "user":
            _fail(str(summary.get("error")))
        tables.print_run(console, summary)
        if status != contract.COMPLETED:
            raise typer.Exit(1)

    _run_command(go)


# ----------------------------------------------------------------------------- sweep


@app.command()
def sweep(
    overrides: Overrides = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Runs at a time on this machine (joblib launcher; each gets cores/N threads; "
            "default 1, or the stored value on --resume).",
        ),
    ] = None,
    launcher: SweepLauncher = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Sweep directory name (default: the start time).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            parser=_folder,
            metavar="DIR",
            help="Finish an interrupted sweep in this directory.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the grid; train nothing.")
    ] = False,
    stack_size: Annotated[
        int | None,
        typer.Option(
            "--stack-size",
            min=1,
            help=(
                "Most runs trained together as one stacked model (default "
                f"{DEFAULT_STACK_SIZE}; on a GPU {GPU_STACK_SIZE}, or as many as half its "
                "memory holds)."
            ),
        ),
    ] = None,
    no_stack: Annotated[
        bool, typer.Option("--no-stack", help="Train every run in its own process.")
    ] = False,
    config_dir: ConfigDirs = None,
    outputs: Outputs = None,
) -> None:
    """Run one training per combination of the swept values.

    Runs that differ only in beta, seed, kl.* or loss.sigma train together as one stacked
    model (each still writes its own run directory); --no-stack trains them one by one.

    Give each key once (several values go in one override); a sweep holds at most 10,000 runs.

    Examples:
      vaesweep sweep beta=0.01,0.1,1
      vaesweep sweep beta=0.001,0.01,0.1,1,10 seed=0,1,2 --jobs 2
      vaesweep sweep 'beta=range(0,1,0.25)' model=glob(*) --dry-run
    """

    if no_stack and stack_size is not None:
        _fail(
            f"--no-stack and --stack-size {stack_size} contradict each other; give one of "
            "them (--no-stack: every run in its own process)"
        )

    def go() -> None:
        from vaesweep.commands.launching import LaunchOptions
        from vaesweep.commands.sweep import sweep_command

        opts = LaunchOptions(
            launcher or "basic",
            jobs or 1,
            _config_dirs(config_dir),
            outputs,
            launcher_given=launcher is not None,
            jobs_given=jobs is not None,
        )
        opts.stack_size = 0 if no_stack else stack_size
        code = sweep_command(
            _overrides(overrides), opts, name, resume, dry_run, _console(), _console(stderr=True)
        )
        if code:
            raise typer.Exit(code)

    _run_command(go)


# ----------------------------------------------------------------------------- ls


@app.command("ls")
def list_outputs(outputs: Outputs = None) -> None:
    """List sweeps and runs under outputs/ with their status counts."""

    def go() -> None:
        from vaesweep.commands.listing import print_listing

        print_listing(_console(), outputs)

    _run_command(go)


# ----------------------------------------------------------------------------- report


@app.command()
def report(
    dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            parser=_folder,
            metavar="DIR",
            help="Sweep or run directories (default: the newest sweep).",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="html (one self-contained file) or md (Markdown + PNGs)."
        ),
    ] = "html",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", parser=_folder, metavar="DIR", help="Report folder (default DIR/report)."
        ),
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the HTML page in a browser.")] = False,
    outputs: Outputs = None,
) -> None:
    """Compare runs side by side: rate-distortion plane, curves, grids, tables and a reading."""

    def go() -> None:
        from vaesweep.report.build import build_report

        path = build_report(list(dirs or []), fmt=fmt, out=out, outputs=outputs, console=_console())
        from vaesweep.tracking.session import upload_report

        # A sweep logged to MLflow gets its report as artifacts of the sweep's parent run.
        sources = list(dirs or []) or ([path.parent.parent] if out is None else [])
        for run_id in upload_report(sources, path.parent):
            _console().print(f"report logged to MLflow run {run_id}", highlight=False)
        if open_:
            import webbrowser

            webbrowser.open(path.resolve().as_uri())

    _run_command(go)


# ----------------------------------------------------------------------------- eval


@app.command("eval")
def evaluate(
    run_dir: Annotated[
        Path, typer.Argument(parser=_folder, metavar="RUN_DIR", help="A finished run directory.")
    ],
    split: Annotated[str, typer.Option("--split", help="val or test.")] = "val",
    iwae_samples: Annotated[
        int, typer.Option("--iwae-samples", help="Importance samples per image.")
    ] = 1000,
    images: Annotated[
        int | None, typer.Option("--images", help="Evaluate the first N images (default all).")
    ] = None,
    disentanglement: Annotated[
        bool,
        typer.Option(
            "--disentanglement",
            help="Also recompute the disentanglement metrics (dsprites, shapes runs).",
        ),
    ] = False,
    preset: Annotated[
        str,
        typer.Option("--preset", help="Metric sample sizes: auto, published or quick."),
    ] = "auto",
) -> None:
    """Recompute a run's final metrics from its checkpoint; records them in eval.json beside it
    (one entry per setting: evaluating again with other settings keeps the earlier results)."""

    def go() -> None:
        from vaesweep.commands import terminal_tables as tables
        from vaesweep.commands.evaluate import EVAL_FILE, evaluate_run
        from vaesweep.record.evaluations import eval_key

        result = evaluate_run(
            run_dir,
            split=split,
            iwae_samples=iwae_samples,
            images=images,
            disentanglement=preset if disentanglement else None,
        )
        tables.print_evaluation(_console(), result, run_dir / EVAL_FILE, eval_key(result))

    _run_command(go)


def _reflow(doc: str) -> str:
    """A command's docstring as its help: prose paragraphs as one line each, for the terminal
    to wrap (Typer's rich mode keeps the source's line breaks); indented lines (examples) kept."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith(" ") for line in lines):
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


for _command in app.registered_commands:
    if _command.help is None and _command.callback is not None and _command.callback.__doc__:
        _command.help = _reflow(_command.callback.__doc__)


def _writable_streams() -> None:
    """Standard output never fails on a name that is not UTF-8.

    Python keeps such bytes of a path (``data.path=...``, echoed by the sweep's tables) as
    lone surrogates; under a UTF-8 locale stdout refuses them with a UnicodeEncodeError (the C
    locale passes them through, stderr escapes them). Escape them there as stderr does.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main() -> None:
    """Console-script entry point."""
    spin_briefly()  # before torch loads
    _writable_streams()
    try:
        app()
    except UserError as err:  # pragma: no cover - commands catch their own
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
