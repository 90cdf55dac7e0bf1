"""Schema of the ``tracker`` config group (conf/tracker/): experiment trackers fed by the record.

Each option of the group fills one section, so several can be chosen at once
(``tracker=[tensorboard,mlflow]``): a section that is present is a tracker that is on.
Trackers only show what the run's record holds; they never change what is trained or written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vaesweep.config.checks import non_negative, positive, require

#: The longest ``tracker.tensorboard.flush_secs`` (11.6 days): tensorboardX's writer thread
#: waits that long on a multiprocessing queue, whose poll takes at most 2**31 - 1 ms (24.8
#: days); past it the thread died and the run hung when it ended (``flush_secs=1000000000``).
MAX_FLUSH_SECS = 1_000_000


@dataclass
class TensorBoardConfig:
    """Event files in each run directory: ``tensorboard --logdir <sweep or run dir>``."""

    #: Seconds between flushes of the event file to disk (what a live TensorBoard sees).
    flush_secs: int = 10

    def __post_init__(self) -> None:
        positive("tracker.tensorboard.flush_secs", self.flush_secs)
        require(
            self.flush_secs <= MAX_FLUSH_SECS,
            "tracker.tensorboard.flush_secs",
            self.flush_secs,
            f"must be at most {MAX_FLUSH_SECS:,} seconds, e.g. 10",
        )


#: How a run writes to MLflow (``tracker.mlflow.writer``).
MLFLOW_WRITERS = ("auto", "client")


@dataclass
class MlflowConfig:
    """One MLflow experiment per sweep, a parent run for the sweep and a child run per run."""

    #: Where runs are logged; None = ``sqlite:///<outputs>/mlflow.db`` (any MLflow URI works,
    #: e.g. ``http://mlflow.example.org:5000`` for a team server).
    tracking_uri: str | None = None
    #: Experiment name; None = the sweep's name (``vaesweep train``: "vaesweep-runs").
    experiment: str | None = None
    #: ``auto``: a local SQLite store of a schema vaesweep knows is written directly, in the
    #: run's process (no MLflow import: well under 5% of a short run); anything else through
    #: MLflow's client, in a child process. ``client``: always MLflow's client.
    writer: str = "auto"

    def __post_init__(self) -> None:
        for key, value in (("tracking_uri", self.tracking_uri), ("experiment", self.experiment)):
            require(
                value is None or bool(str(value).strip()),
                f"tracker.mlflow.{key}",
                value,
                "must be null or a non-empty string",
            )
        require(
            self.writer in MLFLOW_WRITERS,
            "tracker.mlflow.writer",
            self.writer,
            f"must be one of {', '.join(MLFLOW_WRITERS)}",
        )


#: The options of the group that turn a tracker on (``none`` turns none on), each with the
#: schema of its section; the one list of tracker names (in the order they are fed).
TRACKER_SCHEMAS: dict[str, type] = {"tensorboard": TensorBoardConfig, "mlflow": MlflowConfig}


@dataclass
class TrackerConfig:
    #: Epochs between the reconstruction and sample grids sent to the trackers (the last
    #: epoch always sends them); 0 = only at the end.
    image_every: int = 5
    tensorboard: TensorBoardConfig | None = None
    mlflow: MlflowConfig | None = None

    def __post_init__(self) -> None:
        non_negative("tracker.image_every", self.image_every)

    @property
    def names(self) -> list[str]:
        """The trackers that are on, in a fixed order."""
        return [n for n in TRACKER_SCHEMAS if getattr(self, n) is not None]


def tracker_from_dict(values: Mapping[str, Any], build: Callable[..., Any]) -> TrackerConfig:
    """The typed tracker section of a stored config (``build(schema, values, key)`` checks
    the keys of each mapping, as :func:`vaesweep.config.from_dict.config_from_dict` does)."""
    plain = dict(values) if isinstance(values, Mapping) else values
    if isinstance(plain, dict):
        for name, schema in TRACKER_SCHEMAS.items():
            if plain.get(name) is not None:
                plain[name] = build(schema, plain[name], f"tracker.{name}")
    result: TrackerConfig = build(TrackerConfig, plain, "tracker")
    return result
