"""Reading and writing one run directory (see :mod:`vaesweep.record.contract`)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from vaesweep.record import contract
from vaesweep.record.files import (
    atomic_write_bytes,
    atomic_write_text,
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

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        self.summary.update(fields)
        self.summary["schema"] = contract.SCHEMA_VERSION
        write_json(self.summary_path, self.summary)
        return self.summary

    # ------------------------------------------------------------------ metrics
    def load_rows(self, up_to_epoch: int) -> None:
        """Keep the rows of epochs <= ``up_to_epoch`` (those the checkpoint has seen)."""
        if self.metrics_path.exists():
            self.rows = [
                r for r in read_metrics_csv(self.metrics_path) if r["epoch"] <= up_to_epoch
            ]
        else:
            self.rows = []
        if self.metrics_path.exists():
            write_metrics_csv(self.metrics_path, self.rows)

    def append_epoch(
        self,
        epoch: int,
        step: int,
        beta: float,
        rows: dict[str, tuple[dict[str, float], list[float]]],
    ) -> None:
        for split, (values, kl_dims) in rows.items():
            row: dict[str, Any] = {"epoch": epoch, "step": step, "split": split, "beta": beta}
            row.update(values)
            row.update({f"{contract.KL_DIM_PREFIX}{i}": v for i, v in enumerate(kl_dims)})
            self.rows.append(row)
        write_metrics_csv(self.metrics_path, self.rows)

    # ------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.checkpoint_path, buf.getvalue(), durable=False)

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        import torch

        if not self.checkpoint_path.exists():
            return None
        state: dict[str, Any] = torch.load(
            self.checkpoint_path, map_location=map_location, weights_only=True
        )
        return state

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
