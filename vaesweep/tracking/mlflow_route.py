"""Where a run's MLflow tracker does its work: in the run's process, or in a child process.

A local SQLite store whose schema vaesweep knows is written directly by the run's own process
(:mod:`~vaesweep.tracking.mlflow_sqlite`, a few milliseconds of CPU per batch and no MLflow
import), from the fan-out's worker thread like TensorBoard. Every other store, and
``tracker.mlflow.writer=client``, is written through MLflow's client in a child process
(:class:`~vaesweep.tracking.process.ProcessTracker`), whose import (1.3 s of CPU and more)
then overlaps the run's start where the command could tell ahead (:func:`start_early`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.config.tracker import MlflowConfig
from vaesweep.tracking import process
from vaesweep.tracking.base import RunInfo, Tracker
from vaesweep.tracking.mlflow import MlflowTracker
from vaesweep.tracking.mlflow_files import NotDirect
from vaesweep.tracking.mlflow_store import direct, resolve_uri


def child_config(cfg: MlflowConfig) -> MlflowConfig:
    """The settings of the child process: it writes through MLflow's client (the route sends
    it only what the run's process does not write directly)."""
    return dataclasses.replace(cfg, writer="client")


def start_early(cfg: MlflowConfig, outputs_root: Path | None) -> None:
    """Start the child process now, when the run's default store is one it will need it for."""
    uri = resolve_uri(cfg, outputs_root)
    if not direct(cfg, uri):
        process.start_early("mlflow", child_config(cfg), uri)


class MlflowRoute:
    """``tracker=mlflow`` in a run's process (a :class:`~vaesweep.tracking.base.Tracker`)."""

    name = "mlflow"
    min_interval_s = MlflowTracker.min_interval_s

    def __init__(self, cfg: MlflowConfig) -> None:
        self.cfg = cfg
        self.inner: Tracker | None = None

    def _start_child(self) -> Tracker:
        tracker = process.ProcessTracker(
            "mlflow", child_config(self.cfg), self.min_interval_s, self.cfg.tracking_uri
        )
        tracker.prepare()
        return tracker

    def prepare(self) -> None:
        """A store named in the config that is not written directly: the child starts now."""
        uri = self.cfg.tracking_uri
        if uri is not None and not direct(self.cfg, uri):
            self.inner = self._start_child()

    @property
    def unreachable(self) -> str | None:
        return getattr(self.inner, "unreachable", None)

    def on_start(self, info: RunInfo) -> None:
        if self.inner is None and self.cfg.writer == "auto":
            here = MlflowTracker(self.cfg, direct_only=True)
            try:
                here.on_start(info)  # NotDirect comes before anything is written
            except NotDirect:
                pass
            else:
                self.inner = here
                return
        if self.inner is None:
            self.inner = self._start_child()
        self.inner.on_start(info)

    def _inner(self) -> Any:
        if self.inner is None:
            raise RuntimeError("the MLflow tracker was not started")
        return self.inner

    def on_epoch(self, rows: list[dict[str, Any]]) -> None:
        self._inner().on_epoch(rows)

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None:
        self._inner().on_images(epoch, step, images)

    def on_end(self, status: str, summary: dict[str, Any]) -> None:
        self._inner().on_end(status, summary)

    def close(self, wait_s: float) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close(wait_s)
