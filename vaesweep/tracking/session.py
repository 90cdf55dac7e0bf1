"""What the commands do around the runs' trackers: check before launching, open and close a
sweep's MLflow parent run, and upload a sweep's report.

All of it is a no-op for configs without trackers, and nothing here imports a tracker's
package unless that tracker is on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from vaesweep.config.tracker import MlflowConfig, TrackerConfig
from vaesweep.tracking.mlflow import HANDOFF_FILE
from vaesweep.tracking.packages import require_packages

log = logging.getLogger("vaesweep.tracking")


def check(configs: Iterable[TrackerConfig]) -> None:
    """Before anything trains: every tracker's package is installed (else one line, exit 2)."""
    names: list[str] = []
    for cfg in configs:
        names += [n for n in cfg.names if n not in names]
    require_packages(names)


def _mlflow(configs: Iterable[TrackerConfig]) -> MlflowConfig | None:
    return next((c.mlflow for c in configs if c.mlflow is not None), None)


def preflight(
    configs: Sequence[TrackerConfig],
    outputs_root: Path | None,
    start: bool = False,
    create: bool = True,
) -> None:
    """Before launching: the packages are installed and the MLflow store can be used.

    Light (MLflow is not imported: :func:`~vaesweep.tracking.mlflow_store.check_store`). ``start``:
    the run trains in this process, so an MLflow process it will need (a store it does not write
    directly) is started now and imports while the command goes on loading torch and the data
    (:func:`~vaesweep.tracking.mlflow_route.start_early`).
    ``create=False`` (a dry run): nothing is written, not even the store's folder or file.
    """
    check(configs)
    cfg = _mlflow(configs)
    if cfg is not None:
        from vaesweep.tracking.mlflow_route import start_early
        from vaesweep.tracking.mlflow_store import check_store

        check_store(cfg, outputs_root, create)
        if start:
            start_early(cfg, outputs_root)


def open_sweep(
    configs: Sequence[TrackerConfig],
    sweep_dir: Path,
    name: str,
    swept_keys: Sequence[str],
    outputs_root: Path | None,
    n_runs: int,
) -> None:
    """Before a sweep launches (after :func:`preflight`): the MLflow experiment and parent run
    (tagged with the sweep's ``n_runs``)."""
    cfg = _mlflow(configs)
    if cfg is not None:
        from vaesweep.tracking import mlflow_sweep

        mlflow_sweep.open_sweep(cfg, sweep_dir, name, swept_keys, outputs_root, n_runs)


def close_sweep(sweep_dir: Path, statuses: Iterable[str]) -> None:
    """After a sweep: end its MLflow parent run (if it has one); never fails the sweep."""
    if not (Path(sweep_dir) / HANDOFF_FILE).exists():
        return
    try:
        from vaesweep.tracking import mlflow_sweep

        mlflow_sweep.close_sweep(sweep_dir, statuses)
    except Exception as err:  # the sweep's own record is complete either way
        log.warning("could not close the sweep's MLflow run (%s)", str(err).splitlines()[0])


def upload_report(sweep_dirs: Iterable[Path], report_dir: Path) -> list[str]:
    """Log the report as artifacts of each sweep's MLflow parent run; returns the run ids."""
    done = []
    for sweep_dir in sweep_dirs:
        if not (Path(sweep_dir) / HANDOFF_FILE).exists():
            continue
        try:
            from vaesweep.tracking import mlflow_sweep

            run_id = mlflow_sweep.upload_report(Path(sweep_dir), Path(report_dir))
        except Exception as err:  # the report itself is written; say what did not happen
            log.warning(
                "could not upload the report to MLflow (%s)", str(err).splitlines()[0][:300]
            )
            continue
        if run_id:
            done.append(run_id)
    return done
