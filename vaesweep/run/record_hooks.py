"""The run's :class:`~vaesweep.training.trainer.TrainHooks`: what the trainer's epochs leave on disk."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from vaesweep import testhooks
from vaesweep.config import Config
from vaesweep.evaluation.final import preview_grids
from vaesweep.record import RunRecord
from vaesweep.record.images import grid_array, upscale_factor
from vaesweep.tracking import Trackers
from vaesweep.training.progress import EpochProgress
from vaesweep.training.trainer import EpochResult, TrainHooks, TrainState

log = logging.getLogger("vaesweep.run")


class RecordHooks(TrainHooks):
    """Writes metrics after every epoch and checkpoints; drives the progress bar.

    The checkpoint is written after the first epoch, then whenever ``train.checkpoint_every_s``
    seconds of training and validation (the rows' ``seconds``) have passed since the last one,
    and after the last epoch; a 0.6 s digits epoch would otherwise spend about 1% of it (8% in
    a stack of 8) serialising checkpoints nobody resumes from. The clock is the rows' seconds,
    not the wall: the members of a stack share them, so they checkpoint at the same epochs
    and resume as one stack. Resuming drops the metrics rows the checkpoint has not seen.

    An epoch that is not checkpointed is kept in memory (a copy of its state: copying is a
    small part of serialising), and a fit that stops early (Ctrl-C, SIGTERM, an error) saves it
    through :meth:`save_last_epoch`: only a hard kill (SIGKILL, a node lost) goes back to the
    periodic checkpoint.

    The progress fields of ``summary.json`` (epochs done, last metrics) are rewritten at most
    every :attr:`summary_every_s` seconds and by :meth:`write_progress` at the end: they are a
    view for ``ls`` and the sweep monitor, while ``metrics.csv`` and the checkpoint are what
    resuming relies on.

    The trackers (:mod:`vaesweep.tracking`) get exactly the rows just written to metrics.csv,
    and every ``tracker.image_every`` epochs the reconstruction and sample grids.
    """

    summary_every_s = 2.0

    def __init__(
        self,
        record: RunRecord,
        config: Config,
        progress: EpochProgress | None,
        epochs: int,
        trackers: Trackers | None = None,
        val_images: torch.Tensor | None = None,
    ) -> None:
        self.record, self.config, self.progress = record, config, progress
        #: Epochs the run trains (the last may be partial), for the per-epoch log line.
        self.epochs = epochs
        self.trackers, self.val_images = trackers or Trackers([]), val_images
        #: Seconds spent writing the record (CSV, checkpoint, summary) during training.
        self.write_seconds = 0.0
        self._config_dict = config.to_dict()
        self._progress: dict[str, Any] = {}
        self._summary_written = -math.inf  # the first epoch's progress is written at once
        #: Epoch of the last checkpoint written (None: none yet), and seconds of rows since.
        self._checkpoint_epoch: int | None = None
        self._since_checkpoint = 0.0
        #: The last finished epoch when it has no checkpoint: (epoch, a copy of its state).
        self._unsaved: tuple[int, dict[str, Any]] | None = None

    def on_epoch_start(self, epoch: int, n_steps: int) -> None:
        if self.progress:
            self.progress.start_epoch(epoch, n_steps)

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        if self.progress:
            self.progress.advance(loss)

    def on_epoch_end(self, result: EpochResult, state: TrainState) -> None:
        t0 = time.perf_counter()
        self.record.append_epoch(result.epoch, result.step, self.config.beta, result.rows)
        if self.trackers:
            self._track(result, state)
        # Checkpoint after the CSV: a kill in between leaves a row the checkpoint has not
        # seen, which resuming drops (load_rows), never a checkpoint without its row.
        self._since_checkpoint += sum(float(r.get("seconds", 0.0)) for r, _ in result.rows.values())
        if (
            self._checkpoint_epoch is None
            or result.epoch >= self.epochs
            or self._since_checkpoint >= self.config.train.checkpoint_every_s
        ):
            self._checkpoint(result.epoch, state)
        else:
            self._unsaved = (result.epoch, state.snapshot())
        self._progress = {"epochs_done": result.epoch, "step": result.step}
        if t0 - self._summary_written >= self.summary_every_s:
            self.write_progress()
        self.write_seconds += time.perf_counter() - t0
        val = result.rows.get("val", result.rows["train"])[0]
        line = (
            f"epoch {result.epoch}/{self.epochs}: recon {val['recon']:.4g} "
            f"kl {val['kl']:.4g} elbo {val['elbo']:.4g} mse {val['mse']:.4g} "
            f"active {int(val['active_units'])}"
        )
        log.info(line)
        if self.progress:
            self.progress.end_epoch(line)
        testhooks.after_epoch(
            self.record.dir.name, result.epoch, lambda: self._flush(result.epoch, state)
        )

    def _checkpoint(self, epoch: int, state: TrainState) -> None:
        self.record.save_checkpoint(
            {"state": state.state_dict(), "config": self._config_dict}, background=True
        )
        self._checkpoint_epoch, self._since_checkpoint = epoch, 0.0
        self._unsaved = None

    def save_last_epoch(self) -> None:
        """After a fit that stopped early: checkpoint the last finished epoch if the periodic
        checkpoint is older, so that resuming loses only the epoch that was in flight.

        Best effort (the fit's own exception is what the caller reports): a failed write is a
        warning, and the older checkpoint stays, consistent with metrics.csv.
        """
        if self._unsaved is None:
            return
        epoch, state = self._unsaved
        try:
            self.record.save_checkpoint({"state": state, "config": self._config_dict})
        except Exception as err:  # a full disk: resuming starts from the older checkpoint
            log.warning("could not checkpoint epoch %d on stopping (%s)", epoch, err)
            return
        self._checkpoint_epoch, self._since_checkpoint, self._unsaved = epoch, 0.0, None

    def _flush(self, epoch: int, state: TrainState) -> None:
        """The record on disk up to ``epoch``, its checkpoint included (for a test's hold)."""
        if self._checkpoint_epoch != epoch:
            self._checkpoint(epoch, state)
        self.record.flush()

    def _track(self, result: EpochResult, state: TrainState) -> None:
        """Hand the trackers what was just recorded (they log it in their own threads)."""
        self.trackers.epoch(self.record.rows[-len(result.rows) :])
        last = self.epochs
        if self.val_images is None or not self.trackers.wants_images(result.epoch, last):
            return
        model = state.model
        was_training = model.training
        model.eval()
        try:
            grids = preview_grids(model, self.val_images, self.val_images.device, self.config)
        finally:
            model.train(was_training)
        h, w = self.val_images.shape[-2:]
        scale = upscale_factor(int(h), int(w))
        arrays = {k: grid_array(g.rows, scale).numpy() for k, g in grids.items()}
        self.trackers.images(result.epoch, result.step, arrays)

    def write_progress(self) -> None:
        """Bring summary.json's progress fields up to the last finished epoch."""
        if self._progress:
            self.record.update_summary(
                durable=False, final=dict(self.record.last), **self._progress
            )
            self._progress = {}
        self._summary_written = time.perf_counter()
