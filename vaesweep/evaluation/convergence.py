"""Did a run stop while its validation objective was still falling?

The rule (README, "Training length"): compare the validation objective (the ``loss`` column,
nats or SSE per image as minimised) at the end of training with its value at the last
validation row at or before 90% of the run's steps. The run has **converged** when the relative
fall over that last 10% of steps, ``(start - end) / |start|`` (a share of where the window
started, as "fell by 25%" reads), is below ``TOLERANCE`` (1%): more training at this learning
rate would change the objective by about as little again. A rising objective counts as
converged (it is not improving; the report may call it over-fitting). When no validation row
lies before the window (one-epoch runs, sparse ``train.eval_every``), the answer is unknown
(``None``).

A fall of 1% over the last tenth of training is small next to the differences between betas
that the report reads (typically tens of percent), so runs judged converged can be compared
by beta; runs that are not compare training lengths as much as betas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

TOLERANCE = 0.01
WINDOW = 0.10
RULE = (
    "relative fall of the validation objective over the last 10% of steps < 1% "
    "(from the last validation row at or before 90% of the steps to the end; "
    "(start - end) / |start|)"
)
#: What ``rel_change`` is a share of. Records written before this key existed divided by the
#: end value instead (a fall from 4.563 to 3.419 read 33.5%, not 25.1%); the report measures
#: those again from metrics.csv.
RELATIVE_TO = "start"


def convergence(val_points: Iterable[tuple[int, float]], total_steps: int) -> dict[str, Any]:
    """``val_points``: (step, validation objective) per validation row, in any order."""
    points: Sequence[tuple[int, float]] = sorted(
        (int(s), float(v)) for s, v in val_points if math.isfinite(float(v))
    )
    out: dict[str, Any] = {
        "rule": RULE,
        "tolerance": TOLERANCE,
        "window": WINDOW,
        "from_step": None,
        "to_step": None,
        "rel_change": None,
        "relative_to": RELATIVE_TO,
        "converged": None,
    }
    if not points:
        return out
    end_step, end = points[-1]
    cutoff = end_step - max(1, math.ceil(WINDOW * max(total_steps, end_step)))
    before = [p for p in points if p[0] <= cutoff]
    out["to_step"] = end_step
    if not before:
        return out
    start_step, start = before[-1]
    # Positive: the objective fell over the window (still improving).
    rel = (start - end) / max(abs(start), 1e-12)
    out.update(from_step=start_step, rel_change=rel, converged=bool(rel < TOLERANCE))
    return out


def from_rows(
    rows: Iterable[dict[str, Any]], total_steps: int, finished: bool = True
) -> dict[str, Any]:
    """The convergence of a run's metrics rows (validation rows only).

    ``finished=False`` (a run that diverged): the window is still measured, but whether the
    run converged is unknown (``None``): it ended in a blow-up, not at its length, and a rising
    objective would otherwise count as converged.
    """
    out = convergence(
        ((r["step"], r["loss"]) for r in rows if r.get("split") == "val" and "loss" in r),
        total_steps,
    )
    if not finished:
        out["converged"] = None
    return out
