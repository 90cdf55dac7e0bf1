"""One run: typed config and a run directory in, the complete run record out.

This is the only module that wires data, model, KL control and trainer together and writes
files. It never imports Hydra (the bridge calls :func:`run_job`), so it can be driven from
tests or other tools directly. Behaviour on an existing directory:

* ``summary.json`` says ``completed``: nothing is redone (a resumed sweep skips it);
* ``checkpoint.pt`` exists: training continues from the last finished epoch, and
  ``metrics.csv`` rows after that epoch are dropped, so no epoch is ever recorded twice.
"""

from __future__ import annotations

import logging
import math
import platform
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from vaesweep import __version__
from vaesweep.config import Config
from vaesweep.control import RunShape, build_control
from vaesweep.data import load_splits
from vaesweep.data.augment import Augment
from vaesweep.errors import UserError
from vaesweep.model import build_model
from vaesweep.record import RunRecord, contract
from vaesweep.run_outputs import final_iwae, final_kl, write_images
from vaesweep.training.adam import make_adam
from vaesweep.training.convergence import from_rows
from vaesweep.training.device import configure_threads, resolve_device, seed_everything
from vaesweep.training.progress import EpochProgress
from vaesweep.training.trainer import EpochResult, Trainer, TrainHooks, TrainState

log = logging.getLogger("vaesweep.run")

#: Seed of the validation noise shared by every run, so numbers compare like with like.
EVAL_SEED = 2024


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    return {
        "vaesweep": __version__,
        # str(): torch.__version__ is a TorchVersion, and unpickling one (the sweep driver
        # receives this summary from its workers) imports torch.
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


class RecordHooks(TrainHooks):
    """Writes metrics and checkpoint after every epoch; drives the progress bar.

    The progress fields of ``summary.json`` (epochs done, last metrics) are rewritten at most
    every :attr:`summary_every_s` seconds and by :meth:`write_progress` at the end: they are a
    view for ``ls`` and the sweep monitor, while ``metrics.csv`` and the checkpoint (written
    every epoch) are what resuming relies on.
    """

    summary_every_s = 2.0

    def __init__(
        self, record: RunRecord, config: Config, progress: EpochProgress | None, epochs: int
    ) -> None:
        self.record, self.config, self.progress = record, config, progress
        self.epochs = epochs
        #: Seconds spent writing the record (CSV, checkpoint, summary) during training.
        self.write_seconds = 0.0
        self._config_dict = config.to_dict()
        self._progress: dict[str, Any] = {}
        self._summary_written = -math.inf  # the first epoch's progress is written at once

    def on_epoch_start(self, epoch: int, n_steps: int) -> None:
        if self.progress:
            self.progress.start_epoch(epoch, n_steps)

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        if self.progress:
            self.progress.advance(loss)

    def on_epoch_end(self, result: EpochResult, state: TrainState) -> None:
        t0 = time.perf_counter()
        self.record.append_epoch(result.epoch, result.step, self.config.beta, result.rows)
        # Checkpoint after the CSV: a kill in between leaves a row the checkpoint has not
        # seen, which resuming drops (load_rows), never a checkpoint without its row.
        self.record.save_checkpoint(
            {"state": state.state_dict(), "config": self._config_dict}, background=True
        )
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

    def write_progress(self) -> None:
        """Bring summary.json's progress fields up to the last finished epoch."""
        if self._progress:
            self.record.update_summary(
                durable=False, final=dict(self.record.last), **self._progress
            )
            self._progress = {}
        self._summary_written = time.perf_counter()


def run_job(
    config: Config, run_dir: Path, sweep_dir: Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its summary (status in ``summary["status"]``).

    Errors never escape: a bad input is recorded as ``failed`` with ``error_kind="user"``,
    anything else as ``failed`` with ``error_kind="internal"`` and its traceback in train.log.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(run_dir)
    previous = record.read_summary()
    if previous and previous.get("status") == "completed":
        log.info("already completed; skipping %s", run_dir)
        return previous
    record.summary = dict(previous or {})
    record.update_summary(
        status="running",
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
    try:
        _train(config, record)
    except UserError as err:
        record.update_summary(status="failed", error=str(err), error_kind="user")
    except Exception as err:  # a bug: keep the run's record and the traceback
        log.error("run failed:\n%s", traceback.format_exc())
        first = f"{type(err).__name__}: {err}".splitlines()[0]
        record.update_summary(status="failed", error=first, error_kind="internal")
    finally:
        spent = time.perf_counter() - t0
        record.update_summary(
            wall_time_s=float(record.summary.get("wall_time_s") or 0.0) + spent, finished=_now()
        )
        if sweep_dir is not None and (sweep_dir / "sweep.json").exists():
            from vaesweep.sweep.index import refresh_index

            refresh_index(sweep_dir)
    return record.summary


def _train(config: Config, record: RunRecord) -> None:
    t_setup = time.perf_counter()
    threads = configure_threads(config.train.threads)
    device = resolve_device(config.train.device)
    seed_everything(config.seed, config.train.deterministic, device)
    splits = load_splits(config.data)
    for note in splits.notes:
        log.info("data: %s", note)
    c, h, w = splits.shape
    from vaesweep.data.spectrum import pca_spectrum

    spectrum = pca_spectrum(splits.train.images, seed=config.data.split_seed)
    model = build_model(config.model, config.loss, splits.shape).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    record.update_summary(
        # Both lengths: the configured one decides, the other follows from the training set.
        epochs=config.train.total_epochs(len(splits.train)),
        steps=config.train.total_steps(len(splits.train)),
        steps_per_epoch=config.train.steps_per_epoch(len(splits.train)),
        device=str(device),
        threads=threads,
        data={
            "name": config.data.name,
            "root": str(Path(config.data.root).expanduser().resolve()),
            "path": str(Path(config.data.path).expanduser().resolve())
            if config.data.path
            else None,
            "shape": [c, h, w],
            "n_pixels": c * h * w,
            "n_train": len(splits.train),
            "n_val": len(splits.val),
            "n_test": len(splits.test) if splits.test is not None else None,
            "source": splits.source,
            "notes": splits.notes,
            "pca": spectrum,
        },
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
    shape = RunShape.for_run(
        len(train_u8),
        config.train.batch_size,
        config.train.total_steps(len(train_u8)),
        splits.shape,
        model.latent_dim,
        config.loss.recon_reduction,
    )
    control = build_control(config.kl, config.beta, shape)
    optimizer = make_adam(model, config.train.lr, config.train.weight_decay)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    state = TrainState(model, optimizer, control, generator)

    checkpoint = record.load_checkpoint(map_location=device)
    if checkpoint is not None:
        _check_same_experiment(checkpoint.get("config", {}), config, record.dir)
        state.load_state_dict(checkpoint["state"])
        record.load_rows(state.epoch)
        record.update_summary(resumed=[*record.summary.get("resumed", []), state.epoch])
        log.info("resuming after epoch %d (step %d)", state.epoch, state.step)
    else:
        record.reset_rows()
    record.write_text(contract.CONFIG_FILE, config.to_yaml())

    n_train = len(splits.train)
    progress = EpochProgress.create(config.train.progress, config.train.total_epochs(n_train))
    hooks = RecordHooks(record, config, progress, epochs=config.train.total_epochs(n_train))
    trainer.hooks = hooks
    timings = {"setup_s": time.perf_counter() - t_setup}
    t_fit = time.perf_counter()
    try:
        result = trainer.fit(state, train_u8, val_u8)
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
    record.update_summary(convergence=from_rows(record.rows, n_steps))
    if result.status == "diverged":
        log.warning("diverged: %s", result.error)
        record.update_summary(
            status="diverged", error=result.error, error_kind="numeric", timings=timings
        )
        return
    t_final = time.perf_counter()
    model.eval()
    images = write_images(model, record, splits, device, config)
    iwae = final_iwae(model, splits, device, config, EVAL_SEED)
    timings["final_s"] = time.perf_counter() - t_final
    record.update_summary(
        status="completed",
        images=images,
        iwae=iwae,
        kl_per_dim=final_kl(record.rows),
        timings=timings,
    )


#: Sections of the config a checkpoint must agree with to be continued.
_RESUMABLE_KEYS = ("data", "model", "loss", "kl", "beta", "seed")


def _check_same_experiment(saved: dict[str, Any], config: Config, run_dir: Path) -> None:
    current = config.to_dict()
    changed = [k for k in _RESUMABLE_KEYS if k in saved and saved[k] != current[k]]
    if changed:
        raise UserError(
            f"{run_dir} holds a checkpoint of a different experiment ({', '.join(changed)} "
            "changed); continue it with its own settings or train into a new directory"
        )


if __name__ == "__main__":  # pragma: no cover - debugging aid: python -m vaesweep.run DIR
    from vaesweep.config import ConstantKL, ConvConfig

    out = run_job(Config(model=ConvConfig(), kl=ConstantKL()), Path(sys.argv[1]))
    print(out["status"], out.get("error"))
