"""Building a run's :class:`~vaesweep.tracking.base.RunInfo` from its config and directories."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from vaesweep.config import Config
from vaesweep.outputs import RUNS, SWEEPS
from vaesweep.tracking.base import RunInfo, typed

#: The sweep's plan (vaesweep.sweep.plan.PLAN_FILE), read here as plain JSON.
PLAN_FILE = "sweep.json"
#: Overrides that say how a run ran, not what it is: not hyperparameters.
_NOT_HPARAMS = ("train.progress", "train.threads", "train.device", "hydra", "tracker")


def run_info(
    config: Config,
    run_dir: Path,
    sweep_dir: Path | None,
    summary: dict[str, Any],
    resumed_step: int | None,
) -> RunInfo:
    """What the trackers are told about a run as it starts.

    A sweep's runs take their hyperparameters from the sweep's plan (the swept keys and all
    their values); a single run from its overrides, with beta always among them.
    """
    hparams: dict[str, Any] = {}
    domains: dict[str, list[Any]] = {}
    plan = _plan(sweep_dir)
    if plan:
        keys = [str(k).lstrip("+~") for k in plan.get("swept_keys") or []]
        for run in plan.get("runs") or []:
            values = run.get("values") or {}
            for key in keys:
                if key in values:
                    domain = domains.setdefault(key, [])
                    value = typed(str(values[key]))
                    if value not in domain:
                        domain.append(value)
            if run.get("name") == run_dir.name:
                hparams = {k: typed(str(values[k])) for k in keys if k in values}
    if not hparams:
        hparams = {"beta": config.beta}
        for override in summary.get("overrides") or []:
            key, _, value = str(override).partition("=")
            key = key.lstrip("+~")
            if not key.startswith(_NOT_HPARAMS):
                hparams[key] = typed(value)
    return RunInfo(
        run_dir=Path(run_dir),
        name=Path(run_dir).name,
        config=config.to_dict(),
        hparams=hparams,
        hparam_domains=domains,
        sweep_dir=sweep_dir,
        sweep_name=sweep_dir.name if sweep_dir is not None else None,
        host=str(summary.get("host") or socket.gethostname()),
        resumed_step=resumed_step,
        has_iwae=config.eval.iwae_samples > 0,
        outputs_root=_outputs_root(Path(run_dir), sweep_dir),
    )


def _plan(sweep_dir: Path | None) -> dict[str, Any]:
    if sweep_dir is None:
        return {}
    try:
        data = json.loads((sweep_dir / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _outputs_root(run_dir: Path, sweep_dir: Path | None) -> Path | None:
    """``outputs/`` from the layout ``<root>/runs/<run>`` or ``<root>/sweeps/<sweep>/<run>``."""
    if sweep_dir is not None and sweep_dir.parent.name == SWEEPS:
        return sweep_dir.parent.parent
    if run_dir.parent.name == RUNS:
        return run_dir.parent.parent
    return None
