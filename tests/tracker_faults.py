"""Helpers shared by the tracker tests: a run's metrics.csv rows, and a TensorBoard writer
that fails as a full disk would."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from vaesweep.record import contract
from vaesweep.tracking.tensorboard import TensorBoardTracker

#: metrics.csv columns that measure the machine, not the training.
TIMING = {"seconds", "images_per_sec"}


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def record_numbers(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without its timing columns: what must not change with a tracker."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in metrics_rows(run_dir)]


def tensorboard_disk_full_at_epoch_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorBoard's epoch logging raises ENOSPC from epoch 2 on."""
    real = TensorBoardTracker.on_epoch

    def disk_full_at_epoch_2(self: TensorBoardTracker, rows: list[dict[str, Any]]) -> None:
        if rows[0]["epoch"] == 2:
            raise OSError(28, "No space left on device")
        real(self, rows)

    monkeypatch.setattr(TensorBoardTracker, "on_epoch", disk_full_at_epoch_2)
