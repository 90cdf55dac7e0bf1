"""The reading's findings that compare runs beyond β: the spread over seeds, the KL-control
methods side by side, the runs left out of the plots (failed, diverged, unfinished), and the
code that made the runs when it was not one commit.

Each function returns sentences; every number is a seeds.csv or summary.csv value printed with
:func:`~vaesweep.report.numbers.fmt`.
"""

from __future__ import annotations

import pandas as pd

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.numbers import fmt, fmt_int
from vaesweep.report.reading.phrases import Groups, at, nats, ok, plural
from vaesweep.report.reading.pick import lost_seeds


def seeds(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    n = G.g["n_seeds"]
    if n.max() < 2:
        return []
    std = pd.to_numeric(G.g["elbo_std"], errors="coerce")
    mean = pd.to_numeric(G.g["elbo_mean"], errors="coerce")
    if len(G.g) == 1:  # no settings to set the spread against
        g = str(G.g.index[0])
        return [
            f"The {plural(n.iloc[0], 'seed')} {at(G.label(g))} have an ELBO of "
            f"{fmt(mean.iloc[0])} nats with a standard deviation of {fmt(std.iloc[0])} and a "
            f"squared error of {fmt(G.v(g, 'sse'))} with a standard deviation of "
            f"{fmt(G.g.loc[g, 'sse_std'])} per image."
        ]
    g, lo, hi = str(std.idxmax()), str(mean.idxmin()), str(mean.idxmax())
    count = (
        f"Every setting has {plural(n.min(), 'seed')}."
        if n.min() == n.max()
        else f"Settings have {fmt_int(n.min())} to {fmt_int(n.max())} seeds."
    )
    out = [
        f"{count} The largest standard deviation of the ELBO over seeds is {fmt(std.max())} "
        f"nats ({at(G.label(g))}), against ELBO means from {fmt(mean.min())} "
        f"({at(G.label(lo))}) to {fmt(mean.max())} ({at(G.label(hi))}) across settings."
    ]
    sstd = pd.to_numeric(G.g["sse_std"], errors="coerce")
    if sstd.notna().any():
        h = str(sstd.idxmax())
        out.append(
            f"The largest seed standard deviation of the squared error is {fmt(sstd.max())} per "
            f"image ({at(G.label(h))})."
        )
    return out


def methods(G: Groups, ends: tuple[str, str] | None) -> list[str]:
    methods = G.g["method"].dropna().unique()
    if len(methods) < 2 and set(methods) <= {"constant"}:
        return []
    out = []
    for g in list(G.g.index)[:20]:
        g = str(g)
        method = str(G.g.loc[g, "method"])
        name = G.label(g) if G.label(g) == method else f"{G.label(g)} ({method})"
        out.append(
            f"{name}: final β_t = {fmt(G.v(g, 'beta_t'))}, rate "
            f"{fmt(G.v(g, 'kl'))} nats, squared error {fmt(G.v(g, 'sse'))} per image, ELBO "
            f"{fmt(G.v(g, 'elbo'))} nats."
        )
    picks = []
    for col, high, what in (
        ("sse", False, "lowest squared error"),
        ("elbo", True, "best ELBO"),
        ("marginal_kl", False, "smallest marginal KL"),
    ):
        g = G.best(col, high)
        if g:
            value = nats(G.v(g, col)) if col == "marginal_kl" else fmt(G.v(g, col))
            lost = lost_seeds(G, g)
            value += f"; {lost}: the mean of the rest" if lost else ""
            picks.append(f"{what}: {G.label(g)} ({value})")
    if picks:
        out.append("On these runs, " + "; ".join(picks) + ".")
    return out


def failures(sweep: SweepRecords) -> list[str]:
    t = sweep.table[~sweep.table["usable"]]
    out = []
    for _, r in t.iterrows():
        s = f"{r['run']}: {r['status']}"
        if first_epoch(r):
            s += " in its first epoch, before it recorded any finite metrics"
        elif ok(r["epochs_done"]) and ok(r["epochs"]):
            s += f" after {fmt_int(r['epochs_done'])} of {fmt_int(r['epochs'])} epochs"
        if r["error"]:
            s += f" ({str(r['error']).rstrip('.')})"
        elif r["status"] == "completed":
            s += " (no finite final rate or squared error)"
        elif r["status"] == "running":
            s += " (still running, or killed before it could record an end)"
        out.append(s + "; left out of the plots that need final values.")
    return out


def first_epoch(r: pd.Series) -> bool:
    """A diverged run with nothing finite to show: stopped within epoch 1 (no metrics row, so
    no epochs done) or at its end (epoch 1's rows not finite)."""
    if r["status"] != "diverged":
        return False
    done = r["epochs_done"]
    if not ok(done) or done <= 0:
        return True
    return bool(done <= 1 and not (ok(r["kl"]) and ok(r["sse"])))


def code(sweep: SweepRecords) -> list[str]:
    """Which code made the runs (``versions.git_commit``, ``git_modified``), when that matters:
    runs made by different commits, or from a clone whose tracked files had changed since its
    commit, may differ because of the code; records that do not name a commit are not judged."""
    t = sweep.table
    if "code_commit" not in t or not (t["code_commit"] != "").any():
        return []
    named = t[t["code_commit"] != ""]
    label = named["code_commit"].str.slice(0, 7) + named["code_modified"].map(
        {True: " with tracked files changed since it", False: ""}
    )
    kinds = label.value_counts(sort=False)
    unknown = int((t["code_commit"] == "").sum())
    if len(kinds) == 1 and not unknown:
        only = str(kinds.index[0])
        if not named["code_modified"].any():
            return []
        return [
            f"Every run was made by commit {only}: the commit alone may not reproduce these "
            "numbers; commit the changes before the runs you want to keep."
        ]
    parts = []
    for kind, count in kinds.items():
        runs = named.loc[label == kind, "run"].astype(str).tolist()
        shown = ", ".join(runs[:4]) + (", …" if len(runs) > 4 else "")
        parts.append(f"commit {kind} ({plural(count, 'run')}: {shown})")
    if unknown:
        parts.append(f"code the record does not name ({plural(unknown, 'run')})")
    return [
        "These runs were made by different code: " + "; ".join(parts) + ". Differences "
        "between them may come from the code as well as from the settings."
    ]
