"""A stack of runs: member configs and run directories in, one complete run record per member.

The stacked counterpart of :func:`vaesweep.run.run_job`: the data is loaded once, the members
train together as one :class:`~vaesweep.model.stacked.StackedVAE`, and each member's run
directory gets exactly what a single run writes there (summary.json with the same fields,
metrics.csv, config.yaml, checkpoint.pt in the single-run layout, the PNG grids, train.log),
through the same record writer and end-of-run outputs; the members are assembled by the one run
assembly (:mod:`vaesweep.run.stack_assembly`). On an existing directory a member
behaves as a single run does: ``completed`` is left alone, a checkpoint is continued. Members
whose checkpoints stopped at different epochs (a kill between two members' writes) train as
separate stacks, one per epoch reached.

Each member has the trackers its single run has (``config.tracker``: its own TensorBoard event
files, its own MLflow child run, continued on resume), fed by its own record writer, and on a
factor dataset it ends with its single run's disentanglement metrics (disentanglement.json and
``summary["disentanglement"]``), computed on a single model holding the member's weights.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vaesweep.errors import UserError
from vaesweep.evaluation.convergence import from_rows
from vaesweep.evaluation.metrics import EVAL_SEED
from vaesweep.record import RunRecord, contract
from vaesweep.record.checkpoint import check_same_experiment
from vaesweep.run.job import _now, check_weights_fit, data_summary, versions
from vaesweep.run.record_hooks import RecordHooks
from vaesweep.run.stack_members import (
    Member,
    MemberHooks,
    OnceAcrossMembers,
    member_logs,
)
from vaesweep.run.stack_outputs import finish_members
from vaesweep.run.stack_parts import part_count, run_side_by_side, split
from vaesweep.tracking import Trackers
from vaesweep.tracking.fanout import END_WAIT_S, INTERRUPTED_WAIT_S
from vaesweep.tracking.info import run_info

log = logging.getLogger("vaesweep.run")


def run_stack(members: Sequence[Member], sweep_dir: Path | None = None) -> list[dict[str, Any]]:
    """Train the members that are not completed yet as one stack; one summary per member.

    Errors never escape (as :func:`run_job`): a bad input fails every member still open with
    ``error_kind="user"``, anything else with ``"internal"`` and the traceback in train.log.
    """
    todo: list[Member] = []
    for m in members:
        m.run_dir.mkdir(parents=True, exist_ok=True)
        m.record = RunRecord(m.run_dir)
        previous = m.record.read_summary()
        if previous and previous.get("status") == contract.COMPLETED:
            log.info("already completed; skipping %s", m.run_dir)
            continue
        m.record.summary = dict(previous or {})
        m.record.update_summary(
            status=contract.RUNNING,
            error=None,
            error_kind=None,
            name=m.run_dir.name,
            beta=m.config.beta,
            seed=m.config.seed,
            overrides=list(m.overrides),
            epochs=m.config.train.epochs,
            config=m.config.to_dict(),
            config_hash=m.config.hash(),
            started=m.record.summary.get("started", _now()),
            host=socket.gethostname(),
            versions=versions(),
            stack=[x.run_dir.name for x in members],
        )
        todo.append(m)
    t0 = time.perf_counter()
    if todo:
        once = OnceAcrossMembers()
        tracking_log = logging.getLogger("vaesweep.tracking")
        tracking_log.addFilter(once)
        tracker_wait = END_WAIT_S
        with member_logs(todo):
            try:
                for m in todo:
                    m.trackers = Trackers.from_config(m.config.tracker)
                _train_stack(todo)
            except UserError as err:
                _fail(todo, str(err), "user")
            except Exception as err:  # a bug: keep the records and the traceback
                log.error("stack failed:\n%s", traceback.format_exc())
                _fail(todo, f"{type(err).__name__}: {err}".splitlines()[0], "internal")
            except BaseException:  # Ctrl-C, a launcher's kill: do not wait long on trackers
                tracker_wait = INTERRUPTED_WAIT_S
                raise
            finally:
                spent = time.perf_counter() - t0
                for m in todo:
                    assert m.record is not None
                    wall = float(m.record.summary.get("wall_time_s") or 0.0) + spent
                    m.record.update_summary(wall_time_s=wall, finished=_now())
                _end_trackers(todo, tracker_wait)
                tracking_log.removeFilter(once)
    return [RunRecord(m.run_dir).read_summary() or {} for m in members]


def _end_trackers(members: Sequence[Member], wait_s: float) -> None:
    """Every member's trackers get its final status and summary, all at once (their last
    writes overlap, as K single runs' would), each waited for at most ``wait_s``."""
    ending = []
    for m in members:
        if not m.trackers:
            continue
        assert m.record is not None
        status, summary = str(m.record.summary.get("status")), dict(m.record.summary)
        thread = threading.Thread(
            target=m.trackers.end,
            args=(status, summary, wait_s),
            name="vaesweep-tracker-end",
            daemon=True,
        )
        thread.start()
        ending.append(thread)
    for thread in ending:
        thread.join()


def _fail(members: Sequence[Member], error: str, kind: str) -> None:
    for m in members:
        assert m.record is not None
        if m.record.summary.get("status") == contract.RUNNING:
            m.record.update_summary(status=contract.FAILED, error=error, error_kind=kind)


def _train_stack(members: Sequence[Member]) -> None:
    from vaesweep.run.stack_assembly import assemble_members, stack_state

    t_setup = time.perf_counter()
    log.info("training as one stack: %s", ", ".join(m.run_dir.name for m in members))
    assemblies = assemble_members([m.config for m in members], spectrum=True)
    first = assemblies[0]
    splits, device, config = first.splits, first.device, first.config
    for note in splits.notes:
        log.info("data: %s", note)
    data = data_summary(config, first)
    n_params = sum(p.numel() for p in first.model.parameters())
    train_u8, val_u8 = splits.train.images.to(device), splits.val.images.to(device)
    # Where each member starts: its checkpoint's epoch (0 without one).
    starts: dict[int, list[int]] = {}
    checkpoints: list[dict[str, Any] | None] = []
    for k, m in enumerate(members):
        assert m.record is not None
        n_train = len(splits.train)
        m.record.update_summary(
            epochs=m.config.train.total_epochs(n_train),
            steps=m.config.train.total_steps(n_train),
            steps_per_epoch=m.config.train.steps_per_epoch(n_train),
            device=str(device),
            threads=first.threads,
            data=data,
            model={
                "arch": m.config.model.arch,
                "latent_dim": m.config.model.latent_dim,
                "parameters": n_params,
            },
        )
        try:
            checkpoint = m.record.load_checkpoint(map_location=device)
            if checkpoint is not None:
                check_same_experiment(checkpoint.get("config"), m.config.to_dict(), m.run_dir)
                check_weights_fit(checkpoint, assemblies[k].model, m.run_dir)
        except UserError as err:  # this member's checkpoint: it fails alone, the rest train
            log.error("%s: %s", m.run_dir.name, err)
            m.record.update_summary(status=contract.FAILED, error=str(err), error_kind="user")
            checkpoints.append(None)
            continue
        checkpoints.append(checkpoint)
        epoch = int(checkpoint["state"]["epoch"]) if checkpoint is not None else 0
        starts.setdefault(epoch, []).append(k)
    if not starts:
        return
    # Members at different epochs (a kill between two members' checkpoints) train as
    # separate stacks, one per epoch reached; on a CPU each is cut into parts trained side by
    # side (vaesweep.run.stack_parts).
    workers = part_count(device, sum(len(ks) for ks in starts.values()))
    parts = [p for epoch in sorted(starts) for p in split(starts[epoch], workers)]
    setup_s = time.perf_counter() - t_setup
    tasks = [
        functools.partial(
            _fit_group,
            [members[k] for k in part],
            [checkpoints[k] for k in part],
            stack_state([assemblies[k] for k in part]),
            splits,
            train_u8,
            val_u8,
            device,
            setup_s,
        )
        for part in parts
    ]
    if len(parts) > 1:
        log.info(
            "training in %d parts side by side: %s",
            len(parts),
            "; ".join(", ".join(members[k].run_dir.name for k in p) for p in parts),
        )
    run_side_by_side(tasks, workers)


def _fit_group(
    members: Sequence[Member],
    checkpoints: Sequence[dict[str, Any] | None],
    state: Any,
    splits: Any,
    train_u8: torch.Tensor,
    val_u8: torch.Tensor,
    device: torch.device,
    setup_s: float,
) -> None:
    from vaesweep.data.augment import Augment
    from vaesweep.training.stacked_trainer import StackedTrainer

    for k, (m, checkpoint) in enumerate(zip(members, checkpoints)):
        assert m.record is not None
        if checkpoint is not None:
            state.load_member_state_dict(k, checkpoint["state"])
            m.record.load_rows(state.epoch)
            m.record.update_summary(resumed=[*m.record.summary.get("resumed", []), state.epoch])
            log.info(
                "resuming %s after epoch %d (step %d)", m.run_dir.name, state.epoch, state.step
            )
        else:
            m.record.reset_rows()
        m.record.write_text(contract.CONFIG_FILE, m.config.to_yaml())
        if m.trackers:
            resumed = state.step if checkpoint is not None else None
            m.trackers.start(
                run_info(m.config, m.record.dir, m.tracking, m.record.summary, resumed)
            )
    first = members[0].config
    n_train = len(splits.train)
    writers = [
        RecordHooks(
            m.record,  # type: ignore[arg-type]
            m.config,
            None,
            m.config.train.total_epochs(n_train),
            m.trackers,
            val_u8,
        )
        for m in members
    ]
    trainer = StackedTrainer(
        first.train,
        first.eval,
        binarize=first.data.binarize,
        augment=Augment.from_config(first.data),
        eval_seed=EVAL_SEED,
        hooks=[
            MemberHooks(k, w, state, m.run_dir.name)
            for k, (m, w) in enumerate(zip(members, writers))
        ],
    )
    t_fit = time.perf_counter()
    try:
        results = trainer.fit(state, train_u8, val_u8)
    except BaseException:
        for w in writers:
            w.save_last_epoch()
        raise
    finally:
        for m, w in zip(members, writers):
            assert m.record is not None
            t_flush = time.perf_counter()
            m.record.flush()
            w.write_progress()
            w.write_seconds += time.perf_counter() - t_flush
    fit_s = time.perf_counter() - t_fit
    for m, result in zip(members, results, strict=True):  # as a single run: diverged too
        assert m.record is not None
        n_steps = m.config.train.total_steps(n_train)
        finished = result.status != contract.DIVERGED
        m.record.update_summary(convergence=from_rows(m.record.rows, n_steps, finished))
    state.model.eval()
    timings = {
        "setup_s": setup_s,
        "train_s": fit_s - sum(x.write_seconds for x in writers),
        "stack_size": len(members),
    }
    finish_members(members, writers, results, state.model, splits, device, timings)
