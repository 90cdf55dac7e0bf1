"""The tables the commands print on the terminal: one run's result, a sweep's grid and outcome,
an evaluation's numbers."""

from __future__ import annotations

import shlex
import unicodedata
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vaesweep.record import contract
from vaesweep.record.sweep_index import status_counts

#: The one colour of each run status, in every table and line the commands print.
STATUS_COLOURS = {
    contract.COMPLETED: "green",
    contract.DIVERGED: "yellow",
    contract.FAILED: "red",
    contract.RUNNING: "cyan",
}


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "white")


def terminal_safe(text: str) -> str:
    """``text`` as characters a terminal only shows: control characters (an ANSI escape
    ``\\x1b[31m`` in a stored error, a newline in a folder name), format characters (a
    right-to-left override) and line separators print as ``\\x1b``-style escapes instead of
    acting on the terminal; bytes of a file name that are not UTF-8 as ``\\xNN``, as
    :func:`vaesweep.errors.printable` writes them."""
    out = []
    for c in text:
        if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(c.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(c)
    return "".join(out)


def plain(value: Any, style: str = "") -> Text:
    """A value a user or a stored file gave, as literal text for a table or a line: no rich
    markup is read in it (a sweep named ``[red]x`` prints as typed) and no control character
    reaches the terminal (:func:`terminal_safe`)."""
    return Text(terminal_safe(str(value)), style=style)


def _table() -> Table:
    """Rules under the header only: a sweep's result table fits an 80-column terminal."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)


def print_run(console: Console, summary: dict[str, Any]) -> None:
    status = summary.get("status", "?")
    colour = status_colour(status)
    val = (summary.get("final") or {}).get("val") or {}
    # A summary's text (status, path, notes, error) is stored: printed, never read as markup.
    line = plain(status, colour).append(plain(f" {summary.get('run_dir', '')}"))
    console.print(line, soft_wrap=True)
    for note in (summary.get("data") or {}).get("notes") or []:
        console.print(plain(f"data: {note}", "dim"))
    table = _table()
    for col in ("beta", "recon", "kl", "elbo", "mse", "psnr", "active", "beta_calib", "seconds"):
        table.add_column(col, justify="right")
    if val:
        table.add_row(
            fmt(summary.get("beta")),
            fmt(val.get("recon")),
            fmt(val.get("kl")),
            fmt(val.get("elbo")),
            fmt(val.get("mse")),
            fmt(val.get("psnr")),
            fmt(val.get("active_units")),
            fmt(val.get("beta_calib")),
            fmt(summary.get("wall_time_s")),
        )
        console.print(table)
    if summary.get("error"):
        console.print(plain(summary["error"], colour))


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_grid(console: Console, plan: Any, sweep_dir: Path, dry_run: bool) -> None:
    n = len(plan.runs)
    verb = "would run" if dry_run else ("runs" if n != 1 else "run")
    stacks = plan.stacks()
    trained = f" in {len(stacks)} stack{'s' * (len(stacks) != 1)}" if stacks else ""
    # Paths are plain text (a `[` in a name is no markup) and never broken across lines.
    console.print(plain(f"{n} {verb}{trained} -> {sweep_dir}"), soft_wrap=True)
    table = _table()
    table.add_column("#", justify="right")
    for key in plan.swept_keys:
        table.add_column(key)
    if stacks:
        table.add_column("stack", justify="right")
    table.add_column("directory")
    for i, run in enumerate(plan.runs):
        stack = [str(run.stack)] if stacks else []
        values = [plain(run.values[k]) for k in plan.swept_keys]  # no markup
        table.add_row(str(i), *values, *stack, plain(run.name))
    console.print(table)
    fixed = [o for o in plan.overrides if o.split("=", 1)[0] not in plan.swept_keys]
    if fixed:
        # Overrides as typed: `tracker=[tensorboard,mlflow]` read as markup printed `tracker=`.
        console.print(plain("fixed: " + " ".join(fixed)), highlight=False, soft_wrap=True)


def print_sweep(
    console: Console, rows: list[dict[str, Any]], keys: list[str], sweep_dir: Path
) -> None:
    counts = status_counts(rows)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(plain(f"{summary} -> {sweep_dir}"), soft_wrap=True)
    table = _table()
    for col in (*keys, "status", "recon", "kl", "elbo", "mse", "active", "beta_calib", "s"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        colour = status_colour(r["status"])
        table.add_row(
            *[plain(r.get(k, "")) for k in keys],
            plain(r["status"], colour),
            *[
                fmt(r.get(f"val_{k}"))
                for k in ("recon", "kl", "elbo", "mse", "active_units", "beta_calib")
            ],
            fmt(r.get("wall_time_s")),
        )
    console.print(table)
    for r in rows:
        if r.get("error"):
            console.print(plain(f"{r['run']}: {r['error']}"), highlight=False)
    # Quoted for the shell (a name with spaces or `$(...)` must paste safely), not markup.
    console.print(
        f"report: vaesweep report {shlex.quote(str(sweep_dir))}",
        markup=False,
        highlight=False,
        soft_wrap=True,  # a command is never broken across lines, whatever the path's length
    )


def print_evaluation(console: Console, result: dict[str, Any], path: Path, key: str) -> None:
    """``vaesweep eval``'s result: its warnings, the metrics, and the entry ``key`` it wrote."""
    for warning in result.get("warnings", []):
        console.print(Text("warning:", "yellow").append(plain(f" {warning}")), soft_wrap=True)
    for name in ("split", "images", "elbo", "iwae_nll", "bpd", "kl", "mse", "active_units"):
        console.print(f"{name:>13}: {fmt(result.get(name))}")
    for name, value in (result.get("disentanglement") or {}).items():
        if isinstance(value, float) and name != "seconds":
            console.print(f"{name:>19}: {fmt(value)}")
    console.print(plain(f"wrote {path} [{key}]"), soft_wrap=True)
