"""How the command line fails: every mistake a user can fix, a usage error included, as one
``Error:`` line on stderr and exit code 2 (:func:`fail`); an interrupt as exit code 130.

Split from :mod:`vaesweep.cli`, which parses the options and calls the commands.
"""

from __future__ import annotations

import errno
import re
from typing import Any

import typer

from vaesweep.errors import UserError, file_system_refusal

#: click's exception base as Typer raises it (recent Typer vendors click as ``typer._click``;
#: older Typer uses click itself), found through a public name.
CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def usage_error(err: Exception, command: str) -> None:
    """A usage mistake (unknown option, missing argument, a value of the wrong type) as the
    one ``Error:`` line every other mistake gets, with where the right usage is; Typer's rich
    mode drew a multi-line box around it. ``vaesweep`` alone still prints the help.

    ``command``: the command being parsed, for errors that carry no context of their own."""
    if type(err).__name__ == "NoArgsIsHelpError":
        raise err
    ctx = getattr(err, "ctx", None)
    command = ctx.command_path if ctx is not None else command
    message = str(getattr(err, "format_message", err.__str__)()).rstrip(". ")
    fail(f"{message}; see {command} --help", getattr(err, "exit_code", 2))


class OneLineUsageErrors(typer.core.TyperGroup):
    """vaesweep's command group: usage errors of the group and of each command, one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except CLICK_EXCEPTION as err:
            usage_error(err, self.name or "vaesweep")
            raise  # not reached: usage_error exits

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CLICK_EXCEPTION as err:
            sub = getattr(ctx, "invoked_subcommand", None)
            usage_error(err, f"{ctx.command_path} {sub}" if sub else ctx.command_path)
            raise  # not reached


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # Logs and pipes: wide enough that result tables are not truncated.
        console.width = max(console.width, 120)
    return console


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    # One line, whatever the message quotes: a library's text (torchvision's download error)
    # may hold line breaks.
    message = re.sub(r"\s*\n\s*", " ", message.strip())
    # A path that is not UTF-8 (kept by Python as lone surrogates) shows its bytes as \xNN,
    # as printable() writes them, whichever module built the message.
    try:
        message = message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    # Escaped: messages quote commands such as pip install 'vaesweep[mlflow]'.
    console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def run_command(fn: Any) -> Any:
    try:
        return fn()
    except UserError as err:
        fail(str(err))
    except OSError as err:
        # A full disk, a read-only or immutable folder, a name too long, a symlink loop: the
        # user's to fix, so the place is named. Other errors (ENOENT, EEXIST, ...) are bugs.
        refusal = file_system_refusal(err)
        if refusal is None:
            raise
        fail(str(refusal))
    except RuntimeError as err:
        # Path.resolve() (Python < 3.13) reports a symlink loop as a RuntimeError raised
        # while handling the OSError (ELOOP) that names the path.
        cause = err.__context__
        if not (isinstance(cause, OSError) and cause.errno == errno.ELOOP):
            raise
        fail(str(file_system_refusal(cause)))
    except KeyboardInterrupt:
        console(stderr=True).print("[yellow]Interrupted.[/]")
        raise typer.Exit(130) from None
