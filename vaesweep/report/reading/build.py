"""The written reading: plain sentences, each built from numbers in the report's tables.

Every number quoted comes from ``seeds.csv`` (group means over seeds,
:func:`~vaesweep.report.data.seed_stats.seed_stats`) or ``summary.csv`` (one row per run), printed
with :func:`~vaesweep.report.numbers.fmt`, so a reader can find it in the tables. Wording that
judges a number ("over-regularised", "collapsed") is chosen by a threshold on that number, never
fixed in advance, so the text cannot contradict the data. The logic: beta as decoder noise (Lucas et
al. 2019; Rybkin et al. 2021), effective and calibrated beta (README, "What beta means"), the
linear-Gaussian reference (Lucas et al. 2019, "Don't Blame the ELBO!"), active units and collapse
(Burda et al. 2016), information vs prior mismatch (Hoffman & Johnson 2016, "ELBO surgery") and the
three questions of the README.

The reading opens with the answer (:mod:`~vaesweep.report.reading.answer`), then the short answers
to the three questions (:mod:`~vaesweep.report.reading.questions`), then the findings by topic
(:mod:`~vaesweep.report.reading.findings`, :mod:`~vaesweep.report.reading.comparisons`,
:mod:`~vaesweep.report.reading.settling`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import pandas as pd

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.reading import comparisons, diagnosis, findings, settling
from vaesweep.report.reading.answer import build_answer
from vaesweep.report.reading.disentanglement import disentanglement
from vaesweep.report.reading.phrases import Groups
from vaesweep.report.reading.questions import build_questions

T = TypeVar("T")


@dataclass
class Reading:
    """The text of a report: the answer up top, short answers, then findings by topic."""

    headline: str
    title: str = "What β did in these runs"
    answer: list[str] = field(default_factory=list)
    questions: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def text(self) -> str:
        """All sentences as plain text (for tests and the Markdown report)."""
        parts = [self.headline, *self.answer]
        parts += [f"{q} {a}" for q, a in self.questions]
        for title, sentences in self.sections:
            parts += [title, *sentences]
        return "\n".join(parts)


def build_reading(sweep: SweepRecords) -> Reading:
    G = Groups(sweep)
    n_runs = len(sweep.table)
    n_ok = int(sweep.table["usable"].sum())
    reading = Reading(headline=_headline(sweep, G, n_runs, n_ok))
    blown = _diverged(sweep)
    if G.g.empty:
        reading.answer.append(
            f"None of the {n_runs} runs finished with final values, so there is nothing to "
            "compare yet; the runs left out and their reasons are listed below."
        )
        reading.answer[:0] = blown
        reading.sections.append(("Runs left out", comparisons.failures(sweep)))
        return reading
    ends = _ends(G)
    length = _guarded("Training length", lambda: settling.length_sentences(G, ends), sweep)
    still_improving = bool(_guarded("Convergence", lambda: _unconverged(G), sweep))
    # Too short to judge leads too: everything after it describes the start of training.
    still_improving = still_improving or settling.too_short_to_judge(G)
    # Runs that stopped while improving lead: their differences are not yet about beta.
    # A collapse the reduction explains leads too: it is not about beta at all.
    cause = [
        s
        for s in _guarded("The reduction", lambda: diagnosis.reduction_sentences(G), sweep)
        if s.startswith("The reduction, not β")
    ]
    answer = _guarded("The answer", lambda: build_answer(G, ends), sweep)
    single = diagnosis.single_setting(G)
    failed = _guarded("Runs that did not learn", lambda: diagnosis.unlearned(G), sweep)
    provisional = _provisional(sweep)
    reading.answer = (
        provisional + blown + failed + single + (length if still_improving else []) + cause + answer
    )
    headline = _guarded("The title", lambda: [diagnosis.title(G, ends)], sweep)
    reading.title = (headline[0] if headline else None) or reading.title
    reading.questions = _guarded("The short answers", lambda: build_questions(G, ends), sweep)
    explained = _guarded("The explanations", lambda: diagnosis.explanations(G, ends), sweep)
    if explained:
        reading.sections.append(("What explains the differences", explained))
    if length and not still_improving:
        reading.sections.append(("Training length", length))
    for title, fn in (
        ("Effective β and implied decoder noise", findings.effective),
        ("ELBO and likelihood", findings.bounds),
        ("Posterior collapse", findings.collapse),
        ("Distance from the linear (PCA) reference", findings.linear),
        ("Seeds", comparisons.seeds),
        ("KL-control methods", comparisons.methods),
        ("Disentanglement: what a larger β bought", disentanglement),
        ("Controller and decoder-noise convergence", settling.convergence),
    ):
        sentences = _guarded(f"The section {title!r}", partial(fn, G, ends), sweep)
        if sentences:
            reading.sections.append((title, sentences))
    left_out = comparisons.failures(sweep)
    if left_out:
        reading.sections.append(("Runs left out", left_out))
    made_by = _guarded("The code", lambda: comparisons.code(sweep), sweep)
    if made_by:
        reading.sections.append(("The code that made the runs", made_by))
    if sweep.problems:
        reading.sections.append(
            ("Problems reading the records", [p.rstrip(".") + "." for p in sweep.problems])
        )
    return reading


def _unconverged(G: Groups) -> list[bool]:
    """[True] when some run stopped while its objective was still falling, else []."""
    return [True] if settling.still_improving(G) else []


def _guarded(what: str, make: Callable[[], list[T]], sweep: SweepRecords) -> list[T]:
    """``make()``, or nothing and a line among the problems when odd records break it: one
    section that cannot be written must not cost the whole report."""
    try:
        return make()
    except Exception as err:  # reported on the page
        sweep.problems.append(f"{what} could not be written ({type(err).__name__}: {err})")
        return []


def _headline(sweep: SweepRecords, G: Groups, n_runs: int, n_ok: int) -> str:
    kinds = ", ".join(f"{v} {k}" for k, v in sweep.table["status"].value_counts().items())
    what = (
        f"{len(G.g)} setting(s)"
        if len(G.g) != 1
        else (f"one setting ({G.label(G.g.index[0])})" if len(G.g) else "no setting")
    )
    n_partial = int(sweep.usable["partial"].sum()) if sweep.partial else 0
    values = f"{n_ok} with values to compare"
    values += f" ({n_partial} provisional: not finished)" if n_partial else ""
    if not n_partial:
        values = f"{n_ok} with final values"
    return f"{n_runs} run(s) ({kinds}); {values}, covering {what}."


def _provisional(sweep: SweepRecords) -> list[str]:
    """Runs not finished are compared at their latest epoch: say which, and how far along."""
    if not sweep.partial:
        return []
    ok = sweep.usable
    part = ok[ok["partial"]]
    done = pd.to_numeric(part["epochs_done"], errors="coerce").dropna()
    planned = pd.to_numeric(part["epochs"], errors="coerce").dropna()
    where = ""
    if not done.empty:
        lo, hi = int(done.min()), int(done.max())
        where = f"epoch {lo}" + (f"–{hi}" if hi != lo else "")
        where = f" ({where} of {int(planned.max())})" if not planned.empty else f" ({where})"
    labels = "; ".join(dict.fromkeys(str(x) for x in part["label"]))
    many = len(part) > 1
    they, their = ("they are", "their") if many else ("it is", "its")
    if len(part) == len(ok):
        who = "No run has finished yet"
    else:
        who = f"{len(part)} of {len(ok)} runs {'have' if many else 'has'} not finished ({labels})"
    return [
        f"{who}: {they} compared at {their} latest validation epoch{where}, so {their} numbers "
        f"are provisional and will change as training goes on (end-of-run measures such as the "
        f"IWAE bound are not there yet)."
    ]


def _diverged(sweep: SweepRecords) -> list[str]:
    """How many runs diverged and at which settings: the comparison covers only the others,
    so a sweep of four βs that lost two must not read as a sweep of two."""
    t = sweep.table
    bad = t[t["status"] == "diverged"]
    if bad.empty:
        return []
    where = "; ".join(dict.fromkeys(str(x) for x in bad["label"]))
    rest = (
        f"the rest of this reading compares only the {int(t['usable'].sum())} run(s) that finished"
        if t["usable"].any()
        else "no run finished"
    )
    return [
        f"{len(bad)} of {len(t)} runs diverged ({where}): {rest}; the runs left out are listed "
        f"with their errors below."
    ]


def _ends(G: Groups) -> tuple[str, str] | None:
    """(smallest-beta group, largest-beta group) among constant-beta groups, if two differ.

    When another swept key varies too (latent_dim, data, ...), the two ends come from the
    largest set of groups that agree on everything but beta, so the comparison is like for
    like; :attr:`Groups.constant` is narrowed to that set.
    """
    rows = G.constant[G.constant["beta_mean"] > 0]
    if rows.empty:
        return None
    others = rows["others"].fillna("") if "others" in rows else pd.Series("", index=rows.index)
    counts = rows.groupby(others)["beta_mean"].nunique().sort_values(ascending=False)
    if counts.empty or counts.iloc[0] < 2:
        return None
    # Among equally large sets, prefer the canonical sum over pixels (what β means).
    best = counts[counts == counts.iloc[0]].index
    canonical = [k for k in best if "recon_reduction=mean" not in str(k)]
    chosen = canonical[0] if canonical else best[0]
    rows = rows[others == chosen].sort_values("beta_mean")
    G.constant = rows
    G.context = str(chosen)
    return str(rows.index[0]), str(rows.index[-1])
