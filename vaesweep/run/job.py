"""One run: typed config and a run directory in, the complete run record out.

The objects come from the one run assembly (:func:`vaesweep.run.assembly.assemble`); this
module trains them and writes the run record. It never imports Hydra or sweep code (the
bridge's task function calls :func:`run_job` and refreshes a sweep's index itself), so it can
be driven from tests or other tools directly. Behaviour on an existing directory:

* ``summary.json`` says ``completed``: nothing is redone (a resumed sweep skips it);
* ``checkpoint.pt`` exists: training continues from the last finished epoch, and
  ``metrics.csv`` rows after that epoch are dropped, so no epoch is ever recorded twice.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.data.augment import Augment
from vaesweep.errors import UserError
from vaesweep.evaluation.convergence import from_rows
from vaesweep.evaluation.disentanglement import final_disentanglement, summary_entry
from vaesweep.evaluation.final import ImageGrid, final_iwae, image_grids
from vaesweep.evaluation.metrics import EVAL_SEED
from vaesweep.record import RunRecord, contract
from vaesweep.record.checkpoint import RETRAIN_ADVICE, DamagedCheckpoint, check_same_experiment
from vaesweep.record.files import write_json
from vaesweep.record.images import save_grid
from vaesweep.record.provenance import base_versions
from vaesweep.run.assembly import Assembly, assemble
from vaesweep.run.record_hooks import RecordHooks
from vaesweep.tracking import Trackers, TrackingContext
from vaesweep.tracking.fanout import END_WAIT_S, INTERRUPTED_WAIT_S
from vaesweep.tracking.info import run_info
from vaesweep.training.adam import make_adam
from vaesweep.training.progress import EpochProgress
from vaesweep.training.trainer import Trainer, TrainState

log = logging.getLogger("vaesweep.run")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def data_summary(config: Config, run: Assembly) -> dict[str, Any]:
    """``summary.json["data"]``: what the run trained on (shared by single and stacked runs)."""
    splits = run.splits
    c, h, w = run.shape
    return {
        "name": config.data.name,
        "root": str(Path(config.data.root).expanduser().resolve()),
        "path": str(Path(config.data.path).expanduser().resolve()) if config.data.path else None,
        "shape": [c, h, w],
        "n_pixels": c * h * w,
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "n_test": len(splits.test) if splits.test is not None else None,
        "source": splits.source,
        "notes": splits.notes,
        "pca": run.spectrum,
    }


def versions() -> dict[str, str | bool]:
    """The run's ``versions``: :func:`~vaesweep.record.provenance.base_versions` and torch's."""
    # str(): torch.__version__ is a TorchVersion, and unpickling one (the sweep driver receives
    # this summary from its workers) imports torch.
    return {**base_versions(), "torch": str(torch.__version__)}


def run_job(
    config: Config,
    run_dir: Path,
    overrides: list[str] | None = None,
    tracking: TrackingContext | None = None,
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its summary (status in ``summary["status"]``).

    Errors never escape: a bad input is recorded as ``failed`` with ``error_kind="user"``,
    anything else as ``failed`` with ``error_kind="internal"`` and its traceback in train.log.
    ``tracking`` says what the trackers (``config.tracker``) show of the run's sweep, if any.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(run_dir)
    previous = record.read_summary()
    if previous and previous.get("status") == contract.COMPLETED:
        log.info("already completed; skipping %s", run_dir)
        return previous
    record.summary = dict(previous or {})
    record.update_summary(
        status=contract.RUNNING,
        error=None,
        error_kind=None,
        name=run_dir.name,
        beta=config.beta,
        seed=config.seed,
        overrides=list(overrides or []),
        epochs=config.train.epochs,
        config=config.to_dict(),
        config_hash=config.hash(),
        started=record.summary.get("started", _now()),
        host=socket.gethostname(),
        versions=versions(),
    )
    t0 = time.perf_counter()
    trackers, tracker_wait = Trackers([]), END_WAIT_S
    try:
        trackers = Trackers.from_config(config.tracker)
        _train(config, record, trackers, tracking)
    except UserError as err:
        record.update_summary(status=contract.FAILED, error=str(err), error_kind="user")
    except Exception as err:  # a bug: keep the run's record and the traceback
        log.error("run failed:\n%s", traceback.format_exc())
        first = f"{type(err).__name__}: {err}".splitlines()[0]
        record.update_summary(status=contract.FAILED, error=first, error_kind="internal")
    except BaseException:  # Ctrl-C, a launcher's kill: do not keep the user waiting on trackers
        tracker_wait = INTERRUPTED_WAIT_S
        raise
    finally:
        spent = time.perf_counter() - t0
        record.update_summary(
            wall_time_s=float(record.summary.get("wall_time_s") or 0.0) + spent, finished=_now()
        )
        trackers.end(str(record.summary.get("status")), record.summary, tracker_wait)
    return record.summary


def _train(
    config: Config, record: RunRecord, trackers: Trackers, tracking: TrackingContext | None
) -> None:
    t_setup = time.perf_counter()
    run = assemble(config, spectrum=True)
    splits, model, device = run.splits, run.model, run.device
    for note in splits.notes:
        log.info("data: %s", note)
    n_params = sum(p.numel() for p in model.parameters())
    record.update_summary(
        # Both lengths: the configured one decides, the other follows from the training set.
        epochs=config.train.total_epochs(len(splits.train)),
        steps=config.train.total_steps(len(splits.train)),
        steps_per_epoch=config.train.steps_per_epoch(len(splits.train)),
        device=str(device),
        threads=run.threads,
        data=data_summary(config, run),
        model={
            "arch": config.model.arch,
            "latent_dim": model.latent_dim,
            "parameters": n_params,
        },
    )
    train_u8, val_u8 = splits.train.images.to(device), splits.val.images.to(device)
    trainer = Trainer(
        config.train,
        config.eval,
        binarize=config.data.binarize,
        eval_seed=EVAL_SEED,
        augment=Augment.from_config(config.data),
    )
    optimizer = make_adam(model, config.train.lr, config.train.weight_decay)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    state = TrainState(model, optimizer, run.control, generator)

    checkpoint = record.load_checkpoint(map_location=device)
    if checkpoint is not None:
        check_same_experiment(checkpoint.get("config"), config.to_dict(), record.dir)
        load_fitting_state(state, checkpoint, record.dir)
        record.load_rows(state.epoch)
        record.update_summary(resumed=[*record.summary.get("resumed", []), state.epoch])
        log.info("resuming after epoch %d (step %d)", state.epoch, state.step)
    else:
        record.reset_rows()
    record.write_text(contract.CONFIG_FILE, config.to_yaml())
    if trackers:
        resumed = state.step if checkpoint is not None else None
        trackers.start(run_info(config, record.dir, tracking, record.summary, resumed))

    n_train = len(splits.train)
    epochs = config.train.total_epochs(n_train)
    progress = EpochProgress.create(config.train.progress, epochs)
    hooks = RecordHooks(record, config, progress, epochs, trackers, val_u8)
    trainer.hooks = hooks
    timings = {"setup_s": time.perf_counter() - t_setup}
    t_fit = time.perf_counter()
    try:
        result = trainer.fit(state, train_u8, val_u8)
    except BaseException:
        hooks.save_last_epoch()
        raise
    finally:
        t_flush = time.perf_counter()
        record.flush()
        hooks.write_progress()
        hooks.write_seconds += time.perf_counter() - t_flush
        if progress:
            progress.close()
    timings["record_s"] = hooks.write_seconds
    timings["train_s"] = time.perf_counter() - t_fit - hooks.write_seconds
    n_steps = config.train.total_steps(len(train_u8))
    finished = result.status != contract.DIVERGED
    record.update_summary(convergence=from_rows(record.rows, n_steps, finished))
    if result.status == contract.DIVERGED:
        log.warning("diverged: %s", result.error)
        record.update_summary(
            status=contract.DIVERGED, error=result.error, error_kind="numeric", timings=timings
        )
        return
    t_final = time.perf_counter()
    model.eval()
    kl_per_dim = final_kl(record.rows)
    images = _write_images(image_grids(model, splits, device, config, kl_per_dim), record)
    val_rows = [r for r in record.rows if r["split"] == "val"]
    calib_mse = float(val_rows[-1]["mse"]) if val_rows else None
    iwae = final_iwae(model, splits, device, config, EVAL_SEED, calib_mse=calib_mse)
    timings["final_s"] = time.perf_counter() - t_final
    disentanglement = None
    if splits.grid is not None:
        t_dis = time.perf_counter()
        scores = final_disentanglement(model, splits, device, config.eval.disentanglement)
        if scores is not None:
            write_json(record.path(contract.DISENTANGLEMENT_FILE), scores)
            disentanglement = summary_entry(scores)
        timings["disentanglement_s"] = time.perf_counter() - t_dis
    record.update_summary(
        status=contract.COMPLETED,
        images=images,
        iwae=iwae,
        kl_per_dim=kl_per_dim,
        disentanglement=disentanglement,
        timings=timings,
    )


#: File of each grid that :func:`~vaesweep.evaluation.final.image_grids` draws.
_GRID_FILES = {
    "reconstructions": contract.RECONSTRUCTIONS_FILE,
    "samples": contract.SAMPLES_FILE,
    "traversals": contract.TRAVERSALS_FILE,
}


def _write_images(grids: dict[str, ImageGrid], record: RunRecord) -> dict[str, Any]:
    """Write each grid as a PNG; returns ``summary.json["images"]`` (layout per grid)."""
    layout = {}
    for name, grid in grids.items():
        layout[name] = save_grid(record.path(_GRID_FILES[name]), grid.rows)
        layout[name].update(grid.extra)
    return layout


def final_kl(rows: list[dict[str, Any]]) -> list[float]:
    """KL per latent dimension of the last ``val`` row (the last row if there is none)."""
    val = [r for r in rows if r["split"] == "val"] or rows
    last = val[-1]
    prefix = contract.KL_DIM_PREFIX
    dims = sorted((k for k in last if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :]))
    return [float(last[k]) for k in dims]


def check_weights_fit(checkpoint: dict[str, Any], model: torch.nn.Module, run_dir: Path) -> None:
    """Refuse (:class:`~vaesweep.record.checkpoint.DamagedCheckpoint`) a checkpoint whose model
    weights lack one of ``model``'s, hold another, or differ from it in shape: checked before
    a run (or a stack member) starts, so it fails alone and in one line."""
    saved: dict[str, Any] = checkpoint["state"]["model"]
    own = model.state_dict()
    problem = next((f"no {k}" for k in own if k not in saved), None)
    problem = problem or next((f"an unknown {k}" for k in saved if k not in own), None)
    problem = problem or next(
        (
            f"{k} of shape {tuple(saved[k].shape)} where the model's is {tuple(v.shape)}"
            for k, v in own.items()
            if tuple(saved[k].shape) != tuple(v.shape)
        ),
        None,
    )
    if problem is not None:
        raise DamagedCheckpoint(
            f"{run_dir / contract.CHECKPOINT_FILE} does not fit this run's model: its weights "
            f"hold {problem}; {RETRAIN_ADVICE}"
        )


def load_fitting_state(state: TrainState, checkpoint: dict[str, Any], run_dir: Path) -> None:
    """Continue ``state`` from ``checkpoint`` (one checked by
    :meth:`~vaesweep.record.RunRecord.load_checkpoint`), or refuse in one line one whose
    weights or optimiser state do not fit this run's model (torch's message spans lines)."""
    check_weights_fit(checkpoint, state.model, run_dir)
    try:
        state.load_state_dict(checkpoint["state"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DamagedCheckpoint(
            f"{run_dir / contract.CHECKPOINT_FILE} does not fit this run's model ({first}); "
            f"{RETRAIN_ADVICE}"
        ) from None
