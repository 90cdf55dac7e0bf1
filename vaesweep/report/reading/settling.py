"""Whether the runs had settled when they stopped: the training-length sentence (which leads the
answer when some runs were still improving, and weighs whether the two ends of the β comparison
already differ clearly), and the KL controllers or learned decoder noise still moving at the end.

A run counts as converged when its validation objective fell by less than 1% over the last 10%
of training (:mod:`vaesweep.evaluation.convergence`). Every sentence quotes summary.csv's runs
or seeds.csv's group means (:class:`~vaesweep.report.reading.phrases.Groups`).
"""

from __future__ import annotations

import pandas as pd

from vaesweep.report.numbers import fmt, fmt_int, fmt_pct
from vaesweep.report.reading.phrases import Groups, at, ok

#: SSE gaps between the two ends below this share are "no clear difference" (single seeds
#: of the same setting differ by a few percent).
CLEAR_GAP = 0.10


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _column(G: Groups, name: str) -> pd.Series:
    """seeds.csv's column ``name`` as numbers (all NaN when the records predate it)."""
    if name not in G.g:
        return pd.Series(float("nan"), index=G.g.index, dtype=float)
    return pd.Series(pd.to_numeric(G.g[name], errors="coerce"), index=G.g.index, dtype=float)


def unconverged(G: Groups) -> pd.DataFrame:
    """Groups with at least one run that stopped while still improving."""
    return G.g[_column(G, "converged_mean") < 1]


def ends_unconverged(G: Groups, ends: tuple[str, str] | None) -> bool:
    bad = unconverged(G)
    return ends is not None and (ends[0] in bad.index or ends[1] in bad.index)


def beta_gap(G: Groups, ends: tuple[str, str] | None) -> tuple[float, str, str] | None:
    """(relative gap in squared error, better end, worse end) of the β comparison, or None.

    The gap is |SSE_hi - SSE_lo| / min(SSE): the share by which the worse end's error exceeds
    the better one's (0.10, the :data:`CLEAR_GAP`, is about 0.4 dB of PSNR).
    """
    if ends is None:
        return None
    lo, hi = ends
    sse_l, sse_h = G.v(lo, "sse"), G.v(hi, "sse")
    if not (ok(sse_l) and ok(sse_h)) or min(sse_l, sse_h) <= 0:
        return None
    gap = abs(sse_h - sse_l) / min(sse_l, sse_h)
    return (gap, lo, hi) if sse_l <= sse_h else (gap, hi, lo)


def length_sentences(G: Groups, ends: tuple[str, str] | None = None) -> list[str]:
    """Whether the runs converged (leads the answer when some did not).

    When the two ends of the β comparison already differ clearly (:func:`beta_gap`), the text
    does not say "β does not matter yet": the gap is real so far, only its size may change.
    """
    share = _column(G, "converged_mean")
    if share.isna().all():
        return _unjudged(G)
    known = share.notna()
    falls = _column(G, "last10_change_mean")[known]
    bad = unconverged(G)
    if bad.empty:
        rose = falls[falls <= -0.01]  # a rise counts as converged (not improving), but say so
        change = (
            f"fell by less than 1% over the last 10% of training (largest fall "
            f"{_pct(max(falls.max(), 0.0))})"
        )
        if not rose.empty:
            where = "; ".join(f"{_pct(-rose[i])} {at(G.label(str(i)))}" for i in rose.index[:6])
            change += (
                f" or rose (by {where}: the noise of mini-batch training or the start of "
                "over-fitting, not improvement)"
            )
        return [
            f"All {int(known.sum())} settings converged: their validation objective {change}, so "
            f"the differences below are differences between the settings, not training length."
            if int(known.sum()) > 1
            else f"The setting converged: its validation objective {change.replace('their', 'its')}, "
            f"so its numbers are what it converges to, not an effect of the training length."
        ]
    runs = _runs(G, bad.index)
    improving = runs[runs["objective_converged"] == 0]
    # Settings whose objective had settled but whose β_t or learned σ still moved.
    moving = [g for g in bad.index if str(g) not in set(improving["group"].astype(str))]
    longer = _longer(G, bad.index)
    facts = []
    if not improving.empty:
        falls = improving["last10_change"]
        lo, hi = _pct(falls.min()), _pct(falls.max())
        span = lo if lo == hi else f"{lo}–{hi}"
        per_run = " (per run)" if lo != hi else ""
        facts.append(
            f"the validation objective fell by {span}{per_run} over the last 10% of "
            f"{_steps(improving)} (a run counts as converged below 1%)"
        )
    if moving:
        names = "; ".join(
            f"{at(G.label(str(g)))}{_settled(G, g)} {_still_moving(G, g)} still moved"
            for g in moving[:6]
        )
        facts.append(f'{names} (see "Controller and decoder-noise convergence")')
    detail = "; ".join(facts)
    still = "stopped while still improving" if not moving else "had not converged"
    if len(G.g) == 1:  # nothing to compare: say what the length means for this setting alone
        n = int(pd.to_numeric(G.g["n_seeds"]).iloc[0])
        lead = f"This run {still}" if n == 1 else f"These runs {still}"
        tail = (
            f"{'Its' if n == 1 else 'Their'} numbers describe this training length as much as "
            f"the setting; train longer (e.g. {longer}) for the numbers the setting converges to."
        )
        return [f"{lead}; {detail}. {tail}"]
    gap = beta_gap(G, ends)
    clear = gap is not None and gap[0] >= CLEAR_GAP and ends_unconverged(G, ends)
    if len(bad) == int(known.sum()):
        # "β does not matter yet" only where two βs are compared (not across KL methods).
        lead = (
            f"These runs {still}"
            if clear or ends is None
            else f"β does not matter yet: these runs {still}"
        )
    else:
        # Labels hold commas ("β=1, recon_reduction=sum"): semicolons keep them apart.
        names = "; ".join(G.label(str(i)) for i in bad.index[:6])
        lead = (
            f"Not every run converged: {len(bad)} of {int(known.sum())} settings ({names}) {still}"
        )
    if clear and gap is not None:
        _, better, worse = gap
        if better in bad.index and worse not in bad.index:
            # Only the better end could still improve: the gap can only grow (as the title says).
            how = "and that gap is if anything larger; train longer (e.g. {}) for its size."
        else:
            how = "but the size of that gap may still change; train longer (e.g. {}) before reading it."
        tail = (
            f"{at(G.bname(better)).capitalize()} the reconstructions are already better than "
            f"{at(G.bname(worse))}, " + how.format(longer)
        )
    else:
        tail = (
            f"Differences between them are partly training length, not "
            f"{'β' if ends is not None else 'the settings'}; train longer "
            f"(e.g. {longer}) before reading them."
        )
    return [f"{lead}; {detail}. {tail}"]


def _runs(G: Groups, groups: pd.Index) -> pd.DataFrame:
    """The usable runs (summary.csv rows) of ``groups``: the reading quotes their own numbers,
    the ones the table of every run shows, not the groups' means."""
    t = G.table
    return t[t["usable"] & t["group"].astype(str).isin([str(g) for g in groups])]


def _steps(runs: pd.DataFrame) -> str:
    """ "the 78 steps", or "their 78–1,040 steps" when the runs trained for different lengths."""
    steps = pd.to_numeric(runs["steps"], errors="coerce").dropna()
    if steps.empty:
        return "the steps"
    lo, hi = fmt_int(steps.min()), fmt_int(steps.max())
    return f"the {lo} steps" if lo == hi else f"their {lo}–{hi} steps"


def too_short_to_judge(G: Groups) -> bool:
    """Whether every usable run stopped before convergence could be read (no validation before
    its last 10%): then what the reading compares is the start of training."""
    runs = _runs(G, G.g.index)
    if runs.empty or "unjudged" not in runs:
        return False
    return bool((pd.to_numeric(runs["unjudged"], errors="coerce") == 1).all())


def _unjudged(G: Groups) -> list[str]:
    """The length sentence of runs :func:`too_short_to_judge`; it leads the answer."""
    if not too_short_to_judge(G):
        return []
    runs = _runs(G, G.g.index)
    steps = pd.to_numeric(runs["steps"], errors="coerce").dropna()
    epochs = pd.to_numeric(runs["epochs_done"], errors="coerce").dropna()
    length = ""
    if not steps.empty:
        length = f" for {_span(steps)} steps"
        if not epochs.empty:
            n = _span(epochs)
            length += f" ({n} epoch{'' if n == '1' else 's'})"
    whom = "this run" if len(runs) == 1 else "these runs"
    return [
        f"Whether {whom} converged cannot be judged: {'it' if len(runs) == 1 else 'they'} "
        f"trained{length} and validated only within the last 10% of training, the window "
        f"convergence is read from. What follows describes the start of training, not what "
        f"the settings converge to; train longer (e.g. {_longer(G, G.g.index)}) before "
        f"drawing conclusions."
    ]


def _span(values: pd.Series) -> str:
    lo, hi = fmt_int(values.min()), fmt_int(values.max())
    return lo if lo == hi else f"{lo}–{hi}"


def _longer(G: Groups, groups: pd.Index) -> str:
    """How to train ``groups`` longer: four times each one's own length, in the key its config
    set (train.epochs when set: it wins over train.steps, so a larger train.steps would change
    nothing)."""
    picks: dict[str, list[str]] = {}
    for g in groups:
        runs = _runs(G, pd.Index([g]))
        epochs = pd.to_numeric(runs["epochs"], errors="coerce").dropna()
        steps = pd.to_numeric(runs["planned_steps"], errors="coerce").dropna()
        if (runs["length_key"] == "train.epochs").any() and not epochs.empty:
            pick = f"train.epochs={fmt_int(4 * epochs.max())}"
        elif not steps.empty:
            pick = f"train.steps={fmt_int(4 * steps.max())}"
        else:
            continue
        picks.setdefault(pick, []).append(G.label(str(g)))
    if not picks:
        return "a larger train.epochs or train.steps"
    if len(picks) == 1:
        return next(iter(picks))
    return "; ".join(f"{p} for {', '.join(labels[:4])}" for p, labels in picks.items())


def still_improving(G: Groups) -> bool:
    """Whether some run's validation objective was still falling when it stopped (a moving β_t
    alone is not: the length sentence then explains, but does not lead the answer)."""
    runs = _runs(G, G.g.index)
    return bool((runs["objective_converged"] == 0).any())


def _settled(G: Groups, group: object) -> str:
    """ " the objective had settled but" when every run's rule said so; "" when unknown."""
    runs = _runs(G, pd.Index([group]))
    return " the objective had settled but" if (runs["objective_converged"] == 1).all() else ""


def _still_moving(G: Groups, group: object) -> str:
    """What still moved at the end of ``group``'s usable runs; "the objective" when nothing else."""
    return unsettled(G, group, usable_only=True) or "the objective"


def unsettled(G: Groups, group: object, usable_only: bool = False) -> str:
    """What was still moving at the end of a run of ``group`` (β_t, the learned decoder σ), as
    "β_t, the learned decoder σ"; "" when every run had settled. ``usable_only``: only the runs
    the reading quotes (:func:`_runs`)."""
    t = G.table
    if "unsettled" not in t or "group" not in t:
        return ""
    rows = _runs(G, pd.Index([group])) if usable_only else t[t["group"].astype(str) == str(group)]
    names = rows["unsettled"].fillna("").astype(str)
    return ", ".join(sorted({n for v in names for n in v.split(", ") if n}))


def convergence(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    """KL controllers and learned decoder noise that had not settled by the last epochs.

    A controller's β_t (GECO, the PI controller, capacity) or a learned decoder σ that still
    moves over the last epochs means the final numbers are a snapshot of a moving target.
    """
    from vaesweep.report.data.per_run import SETTLE_SHARE, SETTLE_TOLERANCE

    out = []
    for g in G.g.index:
        g = str(g)
        what = unsettled(G, g)
        if not what:
            continue
        changes = []
        for col, name in (("beta_t_change", "β_t"), ("sigma_change", "the learned decoder σ")):
            v = G.v(g, col)
            if name in what and ok(v):
                changes.append(f"{name} changed by {fmt_pct(v)}")
        extra = ""
        if "σ" in what and ok(G.v(g, "mse")):
            extra = f" (√MSE is {fmt(G.v(g, 'mse') ** 0.5)}, where a fitted σ would settle)"
        out.append(
            f"{G.label(g)}: not converged: {', '.join(changes) or what} over the last "
            f"{fmt_pct(SETTLE_SHARE)} of the epochs (more than {fmt_pct(SETTLE_TOLERANCE)})"
            f"{extra}; its final numbers are a snapshot, not the method's equilibrium "
            f"({_settle_advice(G, g, what)})."
        )
    return out


#: KL methods whose β_t follows a fixed schedule of the step, not the run's own numbers.
_SCHEDULES = {
    "warmup": "its warm-up had not reached β when training ended: a kl.epochs below "
    "train.epochs lets β_t settle",
    "cyclical": "a cyclical schedule ends on a ramp unless kl.tail epochs hold β at the end",
}


def _settle_advice(G: Groups, group: str, what: str) -> str:
    """What would let ``group`` settle: a schedule is changed, a controller given time."""
    method = str(G.g.loc[group, "method"]) if "method" in G.g else ""
    if "β_t" in what and method in _SCHEDULES:
        return _SCHEDULES[method]
    if "β_t" in what:
        return "train longer, or make the controller faster"
    return "train longer"
