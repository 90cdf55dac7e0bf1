"""Atomic file writes and the metrics CSV: nothing is ever half-written on disk."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vaesweep.errors import printable
from vaesweep.record.contract import KL_DIM_PREFIX, METRIC_COLUMNS, OPTIONAL_COLUMNS

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (a directory, or a lock file created if
    missing) while the block runs: writers that read, update and rewrite a file take turns.
    The kernel releases it if the holder dies; without ``fcntl`` the block runs unlocked."""
    flags = os.O_RDONLY if Path(path).is_dir() else os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes | memoryview, *, durable: bool = True) -> None:
    """Write to a temporary file in the same directory, then rename it over ``path``.

    The rename makes the write all-or-nothing for a process that is killed at any moment.
    ``durable`` also fsyncs the data first, so it survives a power loss; checkpoints skip
    that (megabytes every epoch), since a lost checkpoint only costs re-running the run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; results should be readable like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush a file already written (e.g. by :func:`atomic_write_bytes` without ``durable``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Write ``text`` as UTF-8; bytes of a file name that are not UTF-8 (lone surrogates, such
    as a swept ``data.path`` in runs.csv) are written as their ``\\xNN`` escapes."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = printable(text).encode("utf-8")
    atomic_write_bytes(path, data, durable=durable)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/Infinity: store them as null so every JSON reader accepts the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n", durable=durable)


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, with a file nested too deeply for the parser (a damaged or hostile
    record: ``[[[[...``) raising ValueError like any other unreadable JSON, not
    RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError (or OSError) when it is not one."""
    with open(path, encoding="utf-8") as f:
        data = parse_json(f.read())
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def metric_header(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Contract order: fixed columns, optional ones present, then kl_dim_0.. in numeric order."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row)
    dims = sorted(
        (k for k in keys if k.startswith(KL_DIM_PREFIX)), key=lambda k: int(k[len(KL_DIM_PREFIX) :])
    )
    optional = [k for k in OPTIONAL_COLUMNS if k in keys]
    known = set(METRIC_COLUMNS) | set(OPTIONAL_COLUMNS) | set(dims)
    extra = sorted(keys - known)
    return [*METRIC_COLUMNS, *optional, *extra, *dims]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
        )
    return str(value)


def format_rows(header: Sequence[str], rows: Iterable[dict[str, Any]]) -> list[str]:
    """CSV lines (with newline) of ``rows`` under ``header``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in header])
    return buf.getvalue().splitlines(keepends=True)


def write_metrics_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite the whole CSV atomically (rows are few: epochs x splits)."""
    header = metric_header(rows)
    atomic_write_text(path, ",".join(header) + "\n" + "".join(format_rows(header, rows)))


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Rows as dicts with numbers parsed (``split`` stays a string); for resuming a run."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for raw in reader:
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if k == "split":
                    row[k] = v
                elif k in ("epoch", "step"):
                    row[k] = int(v)
                elif v == "":
                    continue
                else:
                    row[k] = float(v)
            rows.append(row)
        return rows
