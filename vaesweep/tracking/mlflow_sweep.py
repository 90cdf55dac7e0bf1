"""A sweep's MLflow parent run: opened before its runs launch, ended after them, and given
the sweep's report as artifacts when ``vaesweep report`` is run on it.

The sweep driver writes it (directly, or through MLflow's client for a store it cannot write
directly, :func:`~vaesweep.tracking.mlflow_store.open_store`), and leaves the store's URI and
the ids of the experiment and parent run in the sweep directory for the runs
(:data:`~vaesweep.tracking.mlflow.HANDOFF_FILE`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from vaesweep.config.tracker import MlflowConfig
from vaesweep.tracking.mlflow import HANDOFF_FILE, read_handoff, write_handoff
from vaesweep.tracking.mlflow_store import (
    artifact_location,
    open_store,
    quick_store,
    resolve_uri,
    retry,
    unreachable,
)


def open_sweep(
    cfg: MlflowConfig,
    sweep_dir: Path,
    name: str,
    swept_keys: Iterable[str],
    root: Path | None,
    n_runs: int,
) -> dict[str, str]:
    """Create (or reopen, on resume) the sweep's experiment and parent run before launching.

    Leaves ``{"tracking_uri", "experiment_id", "run_id"}`` in ``sweep_dir/mlflow.json`` for
    the runs, which become the parent's children. A store that cannot be reached is a
    :class:`UserError` here, before anything trains.
    """
    uri = resolve_uri(cfg, root)
    old = read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    try:
        store = open_store(uri, cfg.writer)
        same = old.get("tracking_uri") == uri and old.get("run_id")
        if same and retry(store.reopen, str(old["run_id"])) is not None:
            return {str(k): str(v) for k, v in old.items()}  # else the store lost it: a new one
        experiment = cfg.experiment or name
        exp = retry(store.experiment_id, experiment, artifact_location(uri, experiment))
        tags = {
            "status": "running",
            "host": socket.gethostname(),
            "sweep": name,
            "sweep_dir": str(Path(sweep_dir).resolve()),
            "swept_keys": ",".join(swept_keys),
            "runs": str(n_runs),
        }
        run_id = retry(store.create_run, exp, tags, name)
    except Exception as err:
        raise unreachable(uri, err) from None
    handoff = {"tracking_uri": uri, "experiment_id": exp, "run_id": run_id}
    write_handoff(Path(sweep_dir), handoff)
    return handoff


def close_sweep(sweep_dir: Path, statuses: Iterable[str]) -> None:
    """End the sweep's parent run: FINISHED when every run completed, else FAILED."""
    handoff = read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    if not handoff.get("run_id"):
        return
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    ok = set(counts) <= {"completed"}
    store = open_store(str(handoff["tracking_uri"]))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    run_id = str(handoff["run_id"])
    tags = [("status", "completed" if ok else "unfinished"), ("runs_status", summary)]
    retry(store.log_batch, run_id, tags=tags)
    retry(store.terminate, run_id, "FINISHED" if ok else "FAILED")


def upload_report(sweep_dir: Path, report_dir: Path) -> str | None:
    """Log a report's files as artifacts (``report/``) of the sweep's parent run, if it has one."""
    handoff = read_handoff(Path(sweep_dir) / HANDOFF_FILE)
    if not handoff.get("run_id"):
        return None
    # Bounded: a sweep's server may be long gone when its report is made.
    with quick_store(str(handoff["tracking_uri"])) as store:
        retry(store.log_artifacts, str(handoff["run_id"]), Path(report_dir), "report")
    return str(handoff["run_id"])
