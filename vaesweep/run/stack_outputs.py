"""The end of a stack's members: each completed member's grids, IWAE bound and (on factor
datasets) disentanglement metrics, and its final summary, as :func:`vaesweep.run.run_job` ends a
single run.

The large compute-bound passes (image grids, IWAE) run the members in parallel threads, each
single-threaded (:func:`~vaesweep.evaluation.member_threads.map_members`), on each member's own
single model; a diverged member is recorded with its reason and gets none of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

from vaesweep.evaluation.disentanglement import final_disentanglement, summary_entry
from vaesweep.evaluation.final import final_iwae, image_grids
from vaesweep.evaluation.member_threads import map_members
from vaesweep.evaluation.metrics import EVAL_SEED
from vaesweep.record import contract
from vaesweep.record.files import write_json
from vaesweep.run.job import _write_images, final_kl
from vaesweep.run.record_hooks import RecordHooks
from vaesweep.run.stack_members import Member, OnlyMember
from vaesweep.run.stack_parts import check_stop
from vaesweep.training.trainer import FitResult

log = logging.getLogger("vaesweep.run")


def finish_members(
    members: Sequence[Member],
    writers: Sequence[RecordHooks],
    results: Sequence[FitResult],
    model: Any,
    splits: Any,
    device: torch.device,
    timings: dict[str, Any],
) -> None:
    """Record each member's end: ``diverged`` with its reason, or ``completed`` with its
    end-of-run outputs; ``model`` is the trained :class:`~vaesweep.model.stacked.StackedVAE`
    and ``timings`` what the members share (``summary.json["timings"]``)."""
    completed = []
    for k, (m, w, result) in enumerate(zip(members, writers, results)):
        assert m.record is not None
        if result.status == contract.DIVERGED:
            with OnlyMember.reporting(m.run_dir.name):
                log.warning("diverged: %s", result.error)
            m.record.update_summary(
                status=contract.DIVERGED,
                error=result.error,
                error_kind="numeric",
                timings={**timings, "record_s": w.write_seconds},
            )
        else:
            completed.append(k)
    # Each member's own model, built here (member_model shares a template between calls).
    models = {k: model.member_model(k) for k in completed}

    def outputs(k: int) -> dict[str, Any]:
        check_stop()  # the end-of-run passes check too: Ctrl-C does not reach these threads
        with OnlyMember.reporting(members[k].run_dir.name):
            return _final_outputs(members[k], models[k], splits, device)

    # The large compute-bound passes (image grids, IWAE): members in parallel threads. The
    # disentanglement metrics (scikit-learn, minutes at published sizes) stay one member at a
    # time, so that Ctrl-C never waits for several of them.
    for k, out in zip(completed, map_members(outputs, completed, device)):
        m = members[k]
        assert m.record is not None
        member_timings = {**timings, "record_s": writers[k].write_seconds}
        member_timings["final_s"] = out.pop("final_s")
        disentanglement = None
        with OnlyMember.reporting(m.run_dir.name):
            if splits.grid is not None:
                check_stop()
                t_dis = time.perf_counter()
                preset = m.config.eval.disentanglement
                scores = final_disentanglement(models[k], splits, device, preset)
                if scores is not None:
                    write_json(m.record.path(contract.DISENTANGLEMENT_FILE), scores)
                    disentanglement = summary_entry(scores)
                member_timings["disentanglement_s"] = time.perf_counter() - t_dis
        m.record.update_summary(
            status=contract.COMPLETED,
            **out,
            disentanglement=disentanglement,
            timings=member_timings,
        )


def _final_outputs(m: Member, view: Any, splits: Any, device: torch.device) -> dict[str, Any]:
    """Member m's image grids (written) and IWAE bound, as :func:`run_job` computes them:
    summary fields, and ``final_s`` (seconds)."""
    assert m.record is not None
    t_final = time.perf_counter()
    kl_per_dim = final_kl(m.record.rows)
    grids = image_grids(view, splits, device, m.config, kl_per_dim)
    images = _write_images(grids, m.record)
    val_rows = [r for r in m.record.rows if r["split"] == "val"]
    calib_mse = float(val_rows[-1]["mse"]) if val_rows else None
    iwae = final_iwae(
        view, splits, device, m.config, EVAL_SEED, calib_mse=calib_mse, interrupt=check_stop
    )
    return {
        "images": images,
        "iwae": iwae,
        "kl_per_dim": kl_per_dim,
        "final_s": time.perf_counter() - t_final,
    }
