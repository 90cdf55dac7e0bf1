"""Find the runs of each report DIR and read their records into pandas, robustly.

A DIR is a sweep directory (``sweep.json``), a single run (``summary.json`` or
``metrics.csv``) or a folder holding run directories (a sweep that crashed before writing
``sweep.json``, or any folder of copied runs). Nothing here is fatal for one bad run: a
missing, malformed or truncated file becomes a line in :attr:`Run.problems` and the run keeps
whatever could be read. Only "no runs at all" raises :class:`~vaesweep.errors.UserError`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaesweep.errors import UserError, printable
from vaesweep.record import contract
from vaesweep.record.files import parse_json
from vaesweep.record.layout import outputs_root
from vaesweep.record.sweep_index import live_status

PLAN_FILE = (
    "sweep.json"  # vaesweep.record.sweep_plan.PLAN_FILE, not imported: that module is light,
)
INDEX_FILE = "runs.csv"  # but the report should not depend on the sweep driver's package.
#: The report's own output folder inside a DIR; never mistaken for a run.
REPORT_DIR = "report"
#: summary.json fields the report reads as JSON objects; any other type counts as missing.
OBJECT_FIELDS = (
    "config",
    "data",
    "model",
    "final",
    "convergence",
    "iwae",
    "disentanglement",
    "timings",
    "images",
)
#: metrics.csv columns without which the file cannot be a run's metrics.
REQUIRED_COLUMNS = ("epoch", "split")


@dataclass
class Run:
    """One run as read from disk.

    ``status`` is the summary's (``completed``, ``diverged``, ``failed``, ``running``), or
    ``pending`` for a planned run with no directory, ``unknown`` for a directory without a
    readable summary. ``metrics`` has the metrics.csv rows (``split`` is a string, everything
    else float) or is None.
    """

    key: str
    name: str
    source: str
    path: Path
    status: str = "unknown"
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Source:
    """One DIR given to the report: what it is and the keys its plan sweeps."""

    path: Path
    kind: str  # sweep | run | folder
    swept_keys: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    sources: list[Source]
    runs: list[Run]
    problems: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- where


def _activity(path: Path) -> float:
    """When a sweep or run last changed: its record files, not the folder (report/ touches it)."""
    times = [
        p.stat().st_mtime
        for p in (path / PLAN_FILE, path / INDEX_FILE, path / contract.SUMMARY_FILE)
        if p.exists()
    ]
    return max(times) if times else path.stat().st_mtime


def default_dir(outputs: Path | None) -> Path:
    """The newest sweep under ``<outputs>/sweeps``, else the newest run under ``<outputs>/runs``."""
    root = outputs_root(outputs)
    sweeps = [p for p in (root / "sweeps").glob("*") if (p / PLAN_FILE).is_file()]
    if sweeps:
        return max(sweeps, key=_activity)
    runs = [p for p in (root / "runs").glob("*") if _is_run_dir(p)]
    if runs:
        return max(runs, key=_activity)
    raise UserError(
        f"no sweep or run under {root}; pass a directory (vaesweep report DIR), "
        "or run `vaesweep sweep` first"
    )


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / contract.SUMMARY_FILE).is_file() or (path / contract.METRICS_FILE).is_file()
    )


def discover(path: Path) -> tuple[Source, list[tuple[str, Path, dict[str, str]]]]:
    """(source, [(run name, run dir, swept values)]) of one DIR; UserError if it holds no run."""
    if not path.exists():
        raise UserError(f"{path} does not exist; pass a sweep or run directory")
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass a sweep or run directory")
    plan_path = path / PLAN_FILE
    if plan_path.is_file():
        try:
            plan = parse_json(plan_path.read_text(encoding="utf-8"))
            # Swept values are labels here: a path's bytes that are not UTF-8 as \xNN escapes.
            planned = [
                (str(r["name"]), {k: printable(str(v)) for k, v in (r.get("values") or {}).items()})
                for r in plan["runs"]
            ]
            keys = [str(k) for k in plan.get("swept_keys") or []]
        except (OSError, ValueError, KeyError, TypeError):
            planned, keys = [], []  # damaged plan: fall back to the run folders on disk
        if planned:
            runs = [(name, path / name, values) for name, values in planned]
            listed = {name for name, _ in planned}
            # Runs added by hand next to the planned ones still belong to the sweep.
            runs += [(p.name, p, {}) for p in _run_subdirs(path) if p.name not in listed]
            return Source(path, "sweep", keys), runs
    if _is_run_dir(path):
        return Source(path, "run"), [(path.name, path, {})]
    subdirs = _run_subdirs(path)
    sweeps = [p for p in (*path.glob("*"), *path.glob("sweeps/*")) if (p / PLAN_FILE).is_file()]
    if not subdirs and sweeps:
        raise UserError(
            f"{path} holds sweeps, not runs; pass one of them, e.g. {max(sweeps, key=_activity)}"
        )
    if not subdirs:
        raise UserError(
            f"{path} holds no runs (no {PLAN_FILE}, {contract.SUMMARY_FILE} or "
            f"{contract.METRICS_FILE}); pass a sweep directory such as outputs/sweeps/<name>"
        )
    return Source(path, "folder"), [(p.name, p, {}) for p in subdirs]


def _run_subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name != REPORT_DIR and _is_run_dir(p))


# ----------------------------------------------------------------------------- reading


def read_summary(path: Path) -> tuple[dict[str, Any], str | None]:
    """(summary, problem): an unreadable summary.json gives ``({}, "why")``."""
    file = path / contract.SUMMARY_FILE
    if not file.exists():
        return {}, None
    try:
        data = parse_json(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return {}, f"{contract.SUMMARY_FILE} is unreadable ({type(err).__name__}); skipped it"
    if not isinstance(data, dict):
        return {}, f"{contract.SUMMARY_FILE} does not hold a JSON object; skipped it"
    return data, None


def read_metrics(file: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """metrics.csv as a DataFrame, dropping (and reporting) incomplete or malformed lines.

    The writer always ends the file with a newline and writes every column on every line
    (:func:`vaesweep.record.files.write_metrics_csv`), so a last line without a newline, or a
    line with the wrong number of fields, can only come from truncation or damage.
    """
    name = contract.METRICS_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, [f"{name} is unreadable ({type(err).__name__}); skipped it"]
    problems: list[str] = []
    lines = text.split("\n")
    truncated = not text.endswith("\n") and len(lines) > 1
    if text.endswith("\n"):
        lines = lines[:-1]
    if not lines or not lines[0].strip():
        return None, [f"{name} is empty; skipped it"]
    header = lines[0].split(",")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return None, [f"{name} is malformed (no {', '.join(missing)} column); skipped it"]
    commas = len(header) - 1
    body = lines[1:-1] if truncated else lines[1:]
    good = [ln for ln in body if ln.count(",") == commas]
    if truncated:
        problems.append(f"{name} is truncated (its last line is incomplete); dropped that line")
    if len(good) < len(body):
        problems.append(
            f"{name} has {len(body) - len(good)} malformed line(s) (wrong number of fields); "
            "dropped them"
        )
    if not good:
        problems.append(f"{name} has no complete rows; skipped it")
        return None, problems
    try:
        df = pd.read_csv(io.StringIO("\n".join([lines[0], *good])), dtype={"split": str})
    except (ValueError, pd.errors.ParserError) as err:
        return None, [*problems, f"{name} is malformed ({err}); skipped it"]
    for col in df.columns:
        if col != "split" and df[col].dtype == object:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    bad = df["epoch"].isna() | df["split"].isna()
    if bad.any():
        problems.append(f"{name} has {int(bad.sum())} row(s) without epoch or split; dropped them")
        df = df[~bad]
    if df.empty:
        return None, [*problems, f"{name} has no usable rows; skipped it"]
    df = df.replace([np.inf, -np.inf], np.nan)
    # A resumed run rewrites its rows; if a copy ever holds an epoch twice, the last one counts.
    df = df.drop_duplicates(subset=["epoch", "split"], keep="last").reset_index(drop=True)
    return df, problems


def load_run(name: str, path: Path, source: str, values: dict[str, str], key: str) -> Run:
    run = Run(key=key, name=name, source=source, path=path, values=dict(values))
    if not path.is_dir():
        run.status = "pending"
        run.error = "not started: no run directory"
        return run
    summary, problem = read_summary(path)
    if problem:
        run.problems.append(problem)
    for key in OBJECT_FIELDS:  # a hand-edited "config": [1] is missing, not a crash
        if summary.get(key) is not None and not isinstance(summary[key], dict):
            run.problems.append(
                f"{contract.SUMMARY_FILE} field {key!r} is not an object; ignored it"
            )
            del summary[key]
    run.summary = summary
    if summary:
        run.status = live_status(str(summary.get("status") or "unknown"), path)
        run.error = summary.get("error")
    metrics_file = path / contract.METRICS_FILE
    if metrics_file.is_file():
        run.metrics, problems = read_metrics(metrics_file)
        run.problems.extend(problems)
    elif run.status not in ("failed", "pending") and not _stopped_in_first_epoch(run):
        run.problems.append(f"no {contract.METRICS_FILE}")
    if not summary and run.metrics is None:
        run.status = "unknown"
        run.error = run.error or "no readable summary.json or metrics.csv"
    elif not summary:
        run.error = "no readable summary.json (status unknown; the run may have been killed)"
    return run


def _stopped_in_first_epoch(run: Run) -> bool:
    """A run recorded ``diverged`` before finishing one epoch: the trainer stops at the first
    step whose loss is not finite, before the epoch's rows, so no metrics.csv is its record,
    not a lost file (the reading says where it stopped)."""
    done = run.summary.get("epochs_done")
    return run.status == contract.DIVERGED and not (isinstance(done, int | float) and done > 0)


def load(dirs: list[Path], outputs: Path | None = None) -> Loaded:
    """Read every run of every DIR (default: the newest sweep under ``outputs``)."""
    paths = [Path(d).expanduser() for d in dirs] or [default_dir(outputs)]
    paths = list({p.resolve(): p for p in paths}.values())  # `report DIR DIR`: once
    found = [discover(p) for p in paths]
    several = len(found) > 1
    sources: list[Source] = []
    runs: list[Run] = []
    seen: set[str] = set()
    dirs_seen: set[Path] = set()
    for source, planned in found:
        sources.append(source)
        label = source.path.resolve().name if source.kind != "run" else ""
        for name, run_dir, values in planned:
            if run_dir.resolve() in dirs_seen:  # a run also given on its own, or twice
                continue
            dirs_seen.add(run_dir.resolve())
            key = f"{label}/{name}" if several and label else name
            while key in seen:  # the same run given twice, or two sources with one name
                key += "'"
            seen.add(key)
            runs.append(load_run(name, run_dir, label or name, values, key))
    if not any(r.summary or r.metrics is not None for r in runs):
        where = ", ".join(str(p) for p in paths)
        raise UserError(f"no readable run records in {where} (every run is pending or unreadable)")
    return Loaded(sources, runs)
