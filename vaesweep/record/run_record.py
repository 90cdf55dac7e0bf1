"""Reading and writing one run directory (see :mod:`vaesweep.record.contract`)."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from vaesweep import tensorfile
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.record.checkpoint import (
    RESUME_KEYS,
    RETRAIN_ADVICE,
    DamagedCheckpoint,
    check_same_experiment,
    state_problem,
)
from vaesweep.record.files import (
    atomic_write_bytes,
    atomic_write_text,
    format_rows,
    fsync_file,
    metric_header,
    read_json,
    read_metrics_csv,
    write_json,
    write_metrics_csv,
)


class RunRecord:
    """The files of one run; every write is atomic."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        # CSV lines already formatted for the current header: each epoch formats only its rows.
        self._csv_header: list[str] = []
        self._csv_lines: list[str] = []
        #: The CSV on disk has rows written without fsync (see :meth:`flush`).
        self._csv_unsynced = False
        #: The last row of each split (what ``summary.json["final"]`` shows), kept as rows come.
        self.last: dict[str, dict[str, Any]] = {}
        self._checkpoint_thread: threading.Thread | None = None
        self._checkpoint_error: BaseException | None = None

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def metrics_path(self) -> Path:
        return self.path(contract.METRICS_FILE)

    @property
    def summary_path(self) -> Path:
        return self.path(contract.SUMMARY_FILE)

    @property
    def checkpoint_path(self) -> Path:
        return self.path(contract.CHECKPOINT_FILE)

    # ------------------------------------------------------------------ summary
    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        try:
            return read_json(self.summary_path)
        except (OSError, ValueError):
            return None

    def update_summary(self, *, durable: bool = True, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into summary.json. Per-epoch progress updates pass
        ``durable=False`` (no fsync): they are superseded within seconds."""
        self.summary.update(fields)
        self.summary["schema"] = contract.SCHEMA_VERSION
        write_json(self.summary_path, self.summary, durable=durable)
        return self.summary

    # ------------------------------------------------------------------ metrics
    def load_rows(self, up_to_epoch: int) -> None:
        """Keep the rows of epochs <= ``up_to_epoch`` (those the checkpoint has seen)."""
        self.rows = self.rows_up_to(up_to_epoch)
        if self.metrics_path.exists():
            write_metrics_csv(self.metrics_path, self.rows)
        self._csv_header, self._csv_lines = [], []
        self.last = last_rows(self.rows)

    def rows_up_to(self, epoch: int) -> list[dict[str, Any]]:
        """The rows of epochs <= ``epoch``; a :class:`UserError` if metrics.csv cannot be read
        or stops short of ``epoch`` (a checkpoint is written after its epoch's rows, so a run
        continued from it would lack epochs, and its end, the last row, would fail)."""
        path = self.metrics_path
        try:
            rows = read_metrics_csv(path) if path.exists() else []
            kept = [r for r in rows if r["epoch"] <= epoch]
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"{path}: damaged ({type(err).__name__}); {RETRAIN_ADVICE}") from None
        if epoch > 0 and not any(r["epoch"] == epoch for r in kept):
            raise UserError(
                f"{path}: damaged (no rows of epoch {epoch}, which {contract.CHECKPOINT_FILE} "
                f"has reached); {RETRAIN_ADVICE}"
            )
        return kept

    def reset_rows(self) -> None:
        """Start a fresh ``metrics.csv`` (a run from scratch)."""
        self.rows, self.last = [], {}
        self._csv_header, self._csv_lines = [], []
        self.metrics_path.unlink(missing_ok=True)

    def append_epoch(
        self,
        epoch: int,
        step: int,
        beta: float,
        rows: dict[str, tuple[dict[str, float], list[float]]],
    ) -> None:
        new_rows = []
        for split, (values, kl_dims) in rows.items():
            row: dict[str, Any] = {"epoch": epoch, "step": step, "split": split, "beta": beta}
            row.update(values)
            row.update({f"{contract.KL_DIM_PREFIX}{i}": v for i, v in enumerate(kl_dims)})
            new_rows.append(row)
        self.rows.extend(new_rows)
        self.last.update(last_rows(new_rows))
        # Only new columns (a method's first logged statistic) re-lay the whole file out.
        known = set(self._csv_header)
        fits = all(k in known for row in new_rows for k in row)
        if fits and len(self._csv_lines) == len(self.rows) - len(new_rows):
            self._csv_lines += format_rows(self._csv_header, new_rows)
        else:
            header = metric_header(self.rows)
            self._csv_header, self._csv_lines = header, format_rows(header, self.rows)
        text = ",".join(self._csv_header) + "\n" + "".join(self._csv_lines)
        # Renamed into place, so a killed run never leaves half a file. The fsync (which only
        # matters on a power cut, not a kill) is left to flush() at the end of training.
        atomic_write_text(self.metrics_path, text, durable=False)
        self._csv_unsynced = True

    # ------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, state: dict[str, Any], *, background: bool = False) -> None:
        """Write ``checkpoint.pt`` atomically.

        The state is serialised at once; with ``background`` a helper thread writes and
        renames the bytes while training goes on (the write releases the GIL, serialising
        would not). At most one write is in flight and :meth:`flush` waits for it. The caller
        writes the epoch's metrics first, so the checkpoint on disk is never ahead of
        ``metrics.csv`` (resuming drops rows the checkpoint has not seen).
        """
        self._join_checkpoint()
        buf = tensorfile.dumps(state)
        if not background:
            atomic_write_bytes(self.checkpoint_path, buf, durable=False)
            return
        self._checkpoint_thread = threading.Thread(
            target=self._write_checkpoint, args=(buf,), name="vaesweep-checkpoint"
        )
        self._checkpoint_thread.start()

    def flush(self) -> None:
        """Wait for a background checkpoint write (re-raising its error) and sync the CSV."""
        self._join_checkpoint()
        if self._csv_unsynced and self.metrics_path.exists():
            fsync_file(self.metrics_path)
            self._csv_unsynced = False

    def _join_checkpoint(self) -> None:
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join()
            self._checkpoint_thread = None
        if self._checkpoint_error is not None:
            err, self._checkpoint_error = self._checkpoint_error, None
            raise err

    def _write_checkpoint(self, buf: bytes) -> None:
        try:
            atomic_write_bytes(self.checkpoint_path, buf, durable=False)
        except BaseException as err:  # handed to the training thread by flush()
            self._checkpoint_error = err

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """``checkpoint.pt`` (``{"state": ..., "config": ...}``, a safetensors file:
        :mod:`vaesweep.tensorfile`), None when there is none, and a one-line
        :class:`~vaesweep.record.checkpoint.DamagedCheckpoint` when it is damaged (truncated,
        not a checkpoint, or a state of the wrong structure:
        :func:`~vaesweep.record.checkpoint.state_problem`)."""
        path = self.checkpoint_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise DamagedCheckpoint(f"{path}: unreadable ({err.strerror})") from None
        if data[:2] == b"PK":  # torch.save's zip: a pickle inside, never unpickled here
            raise DamagedCheckpoint(
                f"{path} is a pickle (torch.save, as vaesweep wrote checkpoints before 0.2), "
                f"which vaesweep does not load; {RETRAIN_ADVICE}"
            )
        try:
            checkpoint: dict[str, Any] = tensorfile.loads(data, map_location)
        except tensorfile.UnreadableTensorFile as err:
            raise DamagedCheckpoint(
                f"{path}: damaged checkpoint ({err}); {RETRAIN_ADVICE}"
            ) from None
        problem = state_problem(checkpoint)
        if problem is not None:
            raise DamagedCheckpoint(f"{path}: damaged checkpoint ({problem}); {RETRAIN_ADVICE}")
        return checkpoint

    def check_resumable(self) -> None:
        """Refuse (:class:`UserError`), before anything is rewritten, a run that cannot be
        continued: a damaged checkpoint, one of another experiment than the run's summary
        says, or a metrics.csv without the epochs it has seen."""
        checkpoint = self.load_checkpoint()
        if checkpoint is None:
            return
        missing = [k for k in RESUME_KEYS if k not in checkpoint["state"]]
        if missing:  # evaluating needs only the weights; training on needs these too
            raise DamagedCheckpoint(
                f"{self.checkpoint_path}: damaged checkpoint (no {', '.join(missing)} to "
                f"continue training from); {RETRAIN_ADVICE}"
            )
        config = (self.read_summary() or {}).get("config")
        if isinstance(config, dict):
            check_same_experiment(checkpoint.get("config"), config, self.dir)
        self.rows_up_to(int(checkpoint["state"]["epoch"]))

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path(name), text)


def last_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each split, without the per-dimension KL columns."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[row["split"]] = {
            k: v
            for k, v in row.items()
            if not k.startswith(contract.KL_DIM_PREFIX)
            and not (isinstance(v, float) and math.isnan(v))
        }
    return out
