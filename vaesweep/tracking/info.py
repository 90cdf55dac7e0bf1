"""Building what the trackers are told about a run: :class:`RunInfo`, :func:`sweep_context`."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vaesweep.config import Config
from vaesweep.record.layout import outputs_root_of
from vaesweep.tracking.base import RunInfo, TrackingContext, typed

#: Overrides that say how a run ran, not what it is: not hyperparameters.
_NOT_HPARAMS = ("train.progress", "train.threads", "train.device", "hydra", "tracker")


def sweep_context(
    sweep_dir: Path,
    swept_keys: Iterable[str],
    runs: Iterable[tuple[str, Mapping[str, str]]],
    run_name: str,
) -> TrackingContext:
    """The context of run ``run_name`` of a sweep: ``runs`` is each run's (name, swept values)
    as sweep.json lists them; values are typed (``"0.1"`` -> 0.1) for the trackers."""
    keys = [str(k).lstrip("+~") for k in swept_keys]
    domains: dict[str, list[Any]] = {k: [] for k in keys}
    hparams: dict[str, Any] = {}
    for name, values in runs:
        for key in keys:
            if key in values:
                value = typed(str(values[key]))
                if value not in domains[key]:
                    domains[key].append(value)
                if name == run_name:
                    hparams[key] = value
    return TrackingContext(Path(sweep_dir), hparams, {k: v for k, v in domains.items() if v})


def run_info(
    config: Config,
    run_dir: Path,
    context: TrackingContext | None,
    summary: dict[str, Any],
    resumed_step: int | None,
) -> RunInfo:
    """What the trackers are told about a run as it starts.

    A sweep's run shows its swept values as hyperparameters; a single run its overrides,
    with beta always among them.
    """
    run_dir = Path(run_dir)
    hparams = dict(context.hparams) if context is not None else {}
    if not hparams:
        hparams = {"beta": config.beta}
        for override in summary.get("overrides") or []:
            key, _, value = str(override).partition("=")
            key = key.lstrip("+~")
            if not key.startswith(_NOT_HPARAMS):
                hparams[key] = typed(value)
    sweep_dir = context.sweep_dir if context is not None else None
    return RunInfo(
        run_dir=run_dir,
        name=run_dir.name,
        config=config.to_dict(),
        hparams=hparams,
        hparam_domains=dict(context.hparam_domains) if context is not None else {},
        sweep_dir=sweep_dir,
        sweep_name=sweep_dir.name if sweep_dir is not None else None,
        host=str(summary.get("host") or socket.gethostname()),
        resumed_step=resumed_step,
        has_iwae=config.eval.iwae_samples > 0,
        outputs_root=outputs_root_of(run_dir, sweep_dir),
    )
