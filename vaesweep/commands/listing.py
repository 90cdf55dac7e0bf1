"""``vaesweep ls``: what is under outputs/, newest first, with status counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vaesweep.commands.terminal_tables import plain, status_colour
from vaesweep.errors import UserError, folder_problem
from vaesweep.record.layout import outputs_root, runs_dir, sweeps_dir
from vaesweep.record.sweep_index import index_rows, refresh_index, run_status, status_counts
from vaesweep.record.sweep_lock import is_locked
from vaesweep.record.sweep_plan import PLAN_FILE, DamagedPlan, SweepPlan


def _counts_text(counts: dict[str, int]) -> Text:
    """``2 completed, 1 failed``, each in its status colour; a status is stored text, so it
    is never read as markup (:func:`plain`)."""
    return Text(", ").join(plain(f"{v} {k}", status_colour(k)) for k, v in sorted(counts.items()))


def _rows(sweep_dir: Path, plan: SweepPlan) -> list[dict[str, Any]]:
    """The sweep's index rows; ``runs.csv`` brought up to date when no driver holds the sweep
    (one killed with SIGKILL left it as it was), unless the folder is read-only to us."""
    if not is_locked(sweep_dir):
        try:
            return refresh_index(sweep_dir)
        except OSError:
            pass
    return index_rows(sweep_dir, plan)


def print_listing(console: Console, outputs: Path | None) -> None:
    root = outputs_root(outputs)
    problem = folder_problem(root)
    if problem == "does not exist":
        raise UserError(
            f"no outputs at {root}; run `vaesweep train` or `vaesweep sweep` first "
            "(or pass --outputs DIR)"
        )
    if problem:  # there, but not a folder this user can list: not "no outputs"
        raise UserError(f"the outputs folder {root} {problem}; pass --outputs DIR")
    sweeps = sorted(
        (p for p in sweeps_dir(outputs).glob("*") if (p / PLAN_FILE).exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    runs = sorted(
        (p for p in runs_dir(outputs).glob("*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    # Every name, key, status and date below comes from the user or a stored file: each is
    # printed as plain text (:func:`plain`), never as markup or raw control characters.
    console.print(Text("sweeps in ").append(plain(sweeps_dir(outputs))), soft_wrap=True)
    table = Table()
    for col in ("sweep", "runs", "swept", "status", "created"):
        table.add_column(col)
    for path in sweeps:
        try:
            plan = SweepPlan.load(path)
        except DamagedPlan as err:  # one damaged sweep must not hide the others
            damaged = Text("damaged", status_colour("failed")).append(
                plain(f" {PLAN_FILE} ({err.reason})")
            )
            table.add_row(plain(path.name), "?", "", damaged, "")
            continue
        counts = status_counts(_rows(path, plan))
        table.add_row(
            plain(path.name),
            str(len(plan.runs)),
            plain(" ".join(plan.swept_keys)),
            _counts_text(counts),
            plain(plan.created),
        )
    console.print(table if sweeps else "no sweeps yet")
    console.print(Text("single runs in ").append(plain(runs_dir(outputs))), soft_wrap=True)
    table = Table()
    for col in ("run", "status", "epochs"):
        table.add_column(col)
    for path in runs:
        status, summary = run_status(path)
        epochs = f"{(summary or {}).get('epochs_done', 0)}/{(summary or {}).get('epochs', '?')}"
        table.add_row(plain(path.name), plain(status, status_colour(status)), plain(epochs))
    console.print(table if runs else "no single runs yet")
