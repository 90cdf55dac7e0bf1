"""The report's display tables (as strings), shared by the HTML and Markdown writers.

Numbers are printed with :func:`~vaesweep.report.numbers.fmt`, the format the reading quotes,
and "mean ± std" where a setting has several seeds. summary.csv and seeds.csv keep full
precision; these are for reading.
"""

from __future__ import annotations

import math

import pandas as pd

from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.numbers import fmt, fmt_int, fmt_pct

#: (column stem, header) of the per-setting table; stems index seeds.csv's *_mean/_std.
SETTING_COLUMNS = (
    ("beta_x", "β"),
    ("kl", "rate KL (nats)"),
    ("sse", "SSE / image"),
    ("mse", "MSE / pixel"),
    ("psnr", "PSNR (dB)"),
    ("elbo", "ELBO (nats)"),
    ("elbo_calib", "calibrated ELBO"),
    ("iwae_nll", "IWAE NLL"),
    ("bpd", "bits/dim"),
    ("active_units", "active units"),
    ("informative_dims", "dims ≥ 0.1 nats"),
    ("lin_active_units", "linear AU"),
    ("lin_components_above", "PCA comps > σ²"),
    ("sigma_eff", "σ_eff"),
    ("beta_calib", "β_calib"),
    ("mi", "I(x;z)"),
    ("marginal_kl", "marginal KL"),
    ("sse_above_linear", "SSE − linear"),
    ("steps", "steps"),
    ("last10_change", "val fall, last 10%"),
    ("converged", "converged"),
)
RUN_COLUMNS = (
    ("status", "status"),
    ("epochs_done", "epochs"),
    ("steps", "steps"),
    ("last10_change", "val fall, last 10%"),
    ("converged", "converged"),
    ("kl", "KL"),
    ("sse", "SSE"),
    ("psnr", "PSNR"),
    ("elbo", "ELBO"),
    ("active_units", "AU"),
    ("beta_t", "final β_t"),
    ("beta_sum", "β_sum"),
    ("sigma_eff", "σ_eff"),
    ("beta_calib", "β_calib"),
    ("wall_time_s", "time (s)"),
)
COUNTS = {
    "active_units",
    "informative_dims",
    "lin_active_units",
    "lin_components_above",
    "epochs_done",
    "steps",
}


def _cell(value: object, stem: str) -> str:
    if isinstance(value, str):
        return value
    if stem == "converged":
        # 1 / 0 per run; a setting's mean is the share of its seeds that converged.
        v = float(value) if isinstance(value, (int, float)) else math.nan
        return "" if not math.isfinite(v) else {1.0: "yes", 0.0: "no"}.get(v, fmt_pct(v))
    if stem == "last10_change":
        ok = isinstance(value, float) and math.isfinite(value)
        return f"{100 * value:.1f}%" if ok else ""  # type: ignore[operator]
    if stem in COUNTS:
        return _count(value)
    return fmt(value)


def _count(value: object) -> str:
    """A count, or a dash where the record has none (not pandas' "<NA>")."""
    text = fmt_int(value)
    return "–" if text == "n/a" else text


def settings_table(sweep: SweepRecords) -> pd.DataFrame:
    """One row per setting: mean ± std over seeds of the key metrics (strings)."""
    g = sweep.groups
    out = pd.DataFrame(index=g.index)
    out["setting"] = g["label"]
    if len(sweep.methods) > 1:
        out["method"] = g["method"]
    out["seeds"] = [f"{n}/{m}" for n, m in zip(g["n_seeds"], g["n_runs"])]
    for stem, header in SETTING_COLUMNS:
        mean = g.get(f"{stem}_mean")
        if mean is None or pd.to_numeric(mean, errors="coerce").isna().all():
            continue
        std = g.get(f"{stem}_std")
        cells = []
        for i in g.index:
            m = mean[i]
            s = std[i] if std is not None else math.nan
            text = _cell(m, stem)
            if g.loc[i, "n_seeds"] > 1 and isinstance(s, float) and math.isfinite(s):
                text += f" ± {fmt(s, 2)}"
            text += _saturation_flag(g, i, stem)
            cells.append(text)
        # The beta axis's own name: a controller's column holds its final beta_t, not the
        # beta it was configured with.
        out[sweep.beta_label if stem == "beta_x" else header] = cells
    return out.reset_index(drop=True)


def _saturation_flag(g: pd.DataFrame, i: object, stem: str) -> str:
    """I(x;z) at its log N ceiling: the number is the estimator's cap, not a measurement."""
    if stem not in ("mi", "marginal_kl"):
        return ""
    if "mi_saturated_mean" not in g.columns:
        return ""
    sat = pd.to_numeric(g["mi_saturated_mean"], errors="coerce")
    if not (sat.get(i, 0) > 0):
        return ""
    cap = fmt(g["mi_ceiling_mean"].get(i))
    return f" (saturated: log N = {cap})" if stem == "mi" else " (upper bound: I(x;z) saturated)"


def runs_table(sweep: SweepRecords) -> pd.DataFrame:
    t = sweep.table
    out = pd.DataFrame({"run": t["run"]})
    for col in sweep.swept:
        if col != "beta" and col in t.columns:
            out[col] = [_cell(v, col) for v in t[col]]
    for stem, header in RUN_COLUMNS:
        if stem in t.columns and (stem == "status" or t[stem].notna().any()):
            out[header] = [_cell(v, stem) for v in t[stem]]
    stacked = "stack_size" in t.columns and bool((t["stack_size"] > 1).any())
    if "time (s)" in out.columns and stacked:  # members share their stack's clock
        out = out.rename(columns={"time (s)": "time (s; a stacked run: its stack's)"})
    if "unsettled" in t.columns and "converged" in out.columns:  # why "no" when the fall is small
        out["converged"] = [
            f"no ({u} still moving)" if c == 0 and u else cell
            for c, u, cell in zip(t["converged"], t["unsettled"].fillna(""), out["converged"])
        ]
    return out.reset_index(drop=True)


def left_out_table(sweep: SweepRecords) -> pd.DataFrame:
    t = sweep.table[~sweep.table["usable"]]
    return pd.DataFrame(
        {
            "run": t["run"],
            "status": t["status"],
            "epochs": [f"{_count(a)}/{_count(b)}" for a, b in zip(t["epochs_done"], t["epochs"])],
            "reason": [e or p or "" for e, p in zip(t["error"], t["problems"])],
        }
    ).reset_index(drop=True)
