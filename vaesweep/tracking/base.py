"""What every tracker receives: the run's identity, then the record's rows as they are written."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: Columns of a metrics.csv row that are not logged as values: the split is part of each
#: name, the step is each value's x coordinate.
NOT_LOGGED = ("split", "step")


@dataclass(frozen=True)
class TrackingContext:
    """What a sweep's run tells its trackers about the sweep (built from sweep.json by the
    bridge's task function: the run itself knows nothing about sweeps)."""

    sweep_dir: Path
    #: This run's swept values, typed (``{"beta": 0.1}``).
    hparams: dict[str, Any]
    #: Each swept key's values over the whole sweep, in plan order.
    hparam_domains: dict[str, list[Any]]


@dataclass(frozen=True)
class RunInfo:
    """One run as the trackers see it (all plain values, nothing to import)."""

    run_dir: Path
    #: The run directory's name (a sweep names runs by their swept values: ``beta=0.1``).
    name: str
    #: The resolved config (``Config.to_dict()``), written to config.yaml.
    config: dict[str, Any]
    #: The values that tell this run apart: the swept keys of a sweep (``{"beta": 0.1}``),
    #: or the overrides of a single run, typed where they read as numbers.
    hparams: dict[str, Any]
    #: Each swept key's values over the whole sweep (empty for a single run).
    hparam_domains: dict[str, list[Any]] = field(default_factory=dict)
    sweep_dir: Path | None = None
    sweep_name: str | None = None
    host: str = ""
    #: The step a resumed run continues after (None: a run from scratch).
    resumed_step: int | None = None
    #: Whether the run ends with an IWAE estimate (``summary["iwae"]``).
    has_iwae: bool = False
    #: Where results live (``outputs/``): the default MLflow store sits there.
    outputs_root: Path | None = None


class Tracker(Protocol):
    """A tracker, called from one worker thread in this order.

    ``prepare`` (imports; may run while the data loads), ``on_start`` once, ``on_epoch`` with
    rows appended to metrics.csv (one epoch's, or several epochs' in order) and ``on_images``
    with uint8 grids (H, W, C), then ``on_end`` once with the final status and summary.json's
    content.
    """

    name: str
    #: Seconds the fan-out waits between two ``on_epoch`` calls, batching rows meanwhile.
    min_interval_s: float

    def prepare(self) -> None: ...

    def on_start(self, info: RunInfo) -> None: ...

    def on_epoch(self, rows: list[dict[str, Any]]) -> None: ...

    def on_images(self, epoch: int, step: int, images: dict[str, np.ndarray]) -> None: ...

    def on_end(self, status: str, summary: dict[str, Any]) -> None: ...


def scalars(row: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(name, value)`` of one metrics.csv row: ``<split>/<column>`` for every numeric column.

    The names are the CSV's own column names behind the split, so ``val/kl`` in a tracker is
    the ``kl`` column of the ``val`` rows, at the row's ``step``.
    """
    split = row["split"]
    for key, value in row.items():
        if key in NOT_LOGGED or value is None or isinstance(value, str):
            continue
        yield f"{split}/{key}", float(value)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.001}}`` -> ``{"train.lr": 0.001}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def as_text(value: Any) -> str:
    """A config value as a parameter string: JSON for lists, ``None`` as ``null``."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def typed(value: str) -> Any:
    """An override's value as typed: ``"0.1"`` -> 0.1, ``"true"`` -> True, else the string."""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value
