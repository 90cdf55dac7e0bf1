"""The run's :class:`~vaesweep.training.trainer.TrainHooks`: what the trainer's epochs leave on disk."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.record import RunRecord
from vaesweep.training.progress import EpochProgress
from vaesweep.training.trainer import EpochResult, TrainHooks, TrainState

log = logging.getLogger("vaesweep.run")


class RecordHooks(TrainHooks):
    """Writes metrics and checkpoint after every epoch; drives the progress bar.

    The progress fields of ``summary.json`` (epochs done, last metrics) are rewritten at most
    every :attr:`summary_every_s` seconds and by :meth:`write_progress` at the end: they are a
    view for ``ls`` and the sweep monitor, while ``metrics.csv`` and the checkpoint (written
    every epoch) are what resuming relies on.
    """

    summary_every_s = 2.0

    def __init__(self, record: RunRecord, config: Config, progress: EpochProgress | None) -> None:
        self.record, self.config, self.progress = record, config, progress
        #: Seconds spent writing the record (CSV, checkpoint, summary) during training.
        self.write_seconds = 0.0
        self._config_dict = config.to_dict()
        self._progress: dict[str, Any] = {}
        self._summary_written = -math.inf  # the first epoch's progress is written at once

    def on_epoch_start(self, epoch: int, n_steps: int) -> None:
        if self.progress:
            self.progress.start_epoch(epoch, n_steps)

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        if self.progress:
            self.progress.advance(loss)

    def on_epoch_end(self, result: EpochResult, state: TrainState) -> None:
        t0 = time.perf_counter()
        self.record.append_epoch(result.epoch, result.step, self.config.beta, result.rows)
        # Checkpoint after the CSV: a kill in between leaves a row the checkpoint has not
        # seen, which resuming drops (load_rows), never a checkpoint without its row.
        self.record.save_checkpoint(
            {"state": state.state_dict(), "config": self._config_dict}, background=True
        )
        self._progress = {"epochs_done": result.epoch, "step": result.step}
        if t0 - self._summary_written >= self.summary_every_s:
            self.write_progress()
        self.write_seconds += time.perf_counter() - t0
        val = result.rows.get("val", result.rows["train"])[0]
        line = (
            f"epoch {result.epoch}/{self.config.train.epochs}: recon {val['recon']:.4g} "
            f"kl {val['kl']:.4g} elbo {val['elbo']:.4g} mse {val['mse']:.4g} "
            f"active {int(val['active_units'])}"
        )
        log.info(line)
        if self.progress:
            self.progress.end_epoch(line)

    def write_progress(self) -> None:
        """Bring summary.json's progress fields up to the last finished epoch."""
        if self._progress:
            self.record.update_summary(
                durable=False, final=dict(self.record.last), **self._progress
            )
            self._progress = {}
        self._summary_written = time.perf_counter()
