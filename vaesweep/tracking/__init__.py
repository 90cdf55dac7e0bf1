"""Experiment trackers (TensorBoard, MLflow) fed from the run's record.

The record (metrics.csv, summary.json, the PNG grids) stays the source of truth: the run's
record writer hands each tracker exactly the rows it has just written to metrics.csv, under
the same column names (``<split>/<column>``) with their step, so a tracker shows the same
numbers live and never changes what is trained or recorded. Each tracker runs in its own
thread (:class:`~vaesweep.tracking.fanout.Trackers`): a slow or failing tracker costs the
training loop nothing, and one that fails warns once and is dropped.
"""

from vaesweep.tracking.base import RunInfo, Tracker, TrackingContext
from vaesweep.tracking.fanout import Trackers
from vaesweep.tracking.packages import require_packages

__all__ = ["RunInfo", "Tracker", "Trackers", "TrackingContext", "require_packages"]
