"""One run's row of summary.csv: its final values, effective beta and linear reference.

Final values are the last validation row (summary.json's ``final``, or metrics.csv's last row
when that is newer, e.g. after a crash between the two writes). Units follow the contract
(:mod:`vaesweep.record.contract`): nats per image for ``kl``/``elbo``/``nll``, SSE per image for
``sse``, per-pixel ``mse``, dB for ``psnr``. The effective beta columns are the README's "What
beta means" set: ``sigma2_eff`` is the decoder variance that makes the objective an ELBO
(Lucas et al. 2019; Rybkin et al. 2021), ``beta_norm`` Higgins et al. (2017)'s normalised beta,
and ``beta_calib = sigma2_eff / mse`` compares it with the maximum-likelihood variance of a
shared Gaussian decoder, which is the MSE (Rybkin et al. 2021);
``sigma_eff_255`` is sigma_eff in 8-bit grey levels. The ``lin_*`` columns are the linear-Gaussian
reference (Lucas et al. 2019) at the run's own noise level (same beta) and at its rate (same R).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from vaesweep.evaluation.convergence import RELATIVE_TO, from_rows
from vaesweep.record import contract
from vaesweep.record.provenance import COMMIT_KEY, MODIFIED_KEY
from vaesweep.report.data.linear_reference import Spectrum, sse_at_rate, water_filling
from vaesweep.report.data.load import Run

#: A latent dimension is "informative" when its final KL is at least this many nats; below
#: it the dimension transmits almost nothing (Lucas et al. 2019's epsilon-collapse).
INFORMATIVE_KL = 0.1
#: A KL (nats per image) below minus this is not rounding error but a broken record.
KL_ROUNDING = 1e-3
#: Final values beyond float32's largest number cannot come from a float32 run.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Far below float32's smallest subnormal (1.4e-45), even averaged over a million images:
#: a non-zero value below it cannot come from a float32 run.
FLOAT32_TINY = 1e-60
#: Likelihoods whose objective reads as a Gaussian decoder with variance sigma2_eff.
GAUSSIAN = frozenset({"mse", "gaussian", "gaussian_learned", "gaussian_optimal"})
#: Final validation metrics copied from the contract.
FINAL_METRICS = (
    "recon",
    "nll",
    "kl",
    "elbo",
    "elbo_calib",
    "sse",
    "mse",
    "psnr",
    "active_units",
    "beta_t",
    "beta_sum",
    "beta_norm",
    "sigma2_eff",
    "beta_calib",
    "mi",
    "marginal_kl",
    "grad_norm_recon",
    "grad_norm_kl",
    "grad_cos",
)
#: An I(x;z) estimate within this share of its log N ceiling is saturated: the estimator cannot
#: show more information than log N, so the rate above it reads as "marginal KL" by construction.
MI_SATURATION = 0.9


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def num(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _or_minus_inf(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def final_row(run: Run) -> dict[str, Any]:
    """Final validation row: summary.json's, else the last metrics.csv row (val, then train)."""
    final = (run.summary.get("final") or {}) if run.summary else {}
    row = dict(final.get("val") or final.get("train") or {})
    if run.metrics is not None and not run.metrics.empty:
        m = run.metrics
        last = m[m["split"] == "val"] if (m["split"] == "val").any() else m
        tail = last.iloc[-1].to_dict()
        if not row or num(tail.get("epoch")) > num(row.get("epoch")):
            row = tail
    return row


def kl_per_dim(run: Run) -> np.ndarray:
    """Final validation KL per latent dim (nats): summary.json's, else the last metrics row."""
    kl = run.summary.get("kl_per_dim") if run.summary else None
    if kl:
        return np.array([num(v) for v in kl], dtype=float)
    m = run.metrics
    if m is None or m.empty:
        return np.array([], dtype=float)
    cols = sorted(
        (c for c in m.columns if c.startswith(contract.KL_DIM_PREFIX)),
        key=lambda c: int(c[len(contract.KL_DIM_PREFIX) :]),
    )
    rows = m[m["split"] == "val"] if (m["split"] == "val").any() else m
    return rows[cols].iloc[-1].to_numpy(dtype=float) if cols else np.array([], dtype=float)


def run_row(run: Run, spectrum: Spectrum | None) -> dict[str, Any]:
    """The summary.csv row of one run (swept values are added by :func:`build_sweep`)."""
    s = run.summary or {}
    config = s.get("config") or {}
    final = final_row(run)
    kl_dims = kl_per_dim(run)
    data = s.get("data") or {}
    model = s.get("model") or {}
    loss = config.get("loss") or {}
    verdict = objective_convergence(run)
    method = (config.get("kl") or {}).get("method")
    row: dict[str, Any] = {
        "run": run.key,
        "source": run.source,
        "method": method or ("constant" if config else None),
        "likelihood": loss.get("likelihood"),
        "recon_reduction": loss.get("recon_reduction"),
        "beta": num(s.get("beta", config.get("beta", final.get("beta", run.values.get("beta"))))),
        "seed": num(s.get("seed", config.get("seed", run.values.get("seed")))),
        "status": run.status,
        # metrics.csv can be ahead of summary.json's progress fields (refreshed every few
        # seconds) in a run that was killed: the later of the two is what was measured.
        "epochs_done": max(num(s.get("epochs_done")), num(final.get("epoch")), key=_or_minus_inf),
        "epochs": num(s.get("epochs", (config.get("train") or {}).get("epochs"))),
        # Steps done (a diverged or interrupted run stopped short of its plan), and planned.
        "steps": _steps_done(run, s, final),
        "planned_steps": num(s.get("steps")),
        # The length the config set: train.epochs, when set, wins over train.steps.
        "length_key": "train.epochs"
        if (config.get("train") or {}).get("epochs") is not None
        else "train.steps",
        # summary["convergence"] (evaluation/convergence.py): the relative fall of the validation
        # objective over the last 10% of steps, and 1 / 0 for converged / still improving.
        "last10_change": num(verdict.get("rel_change")),
        "converged": _flag(verdict.get("converged")),
        # 1: the run validated too seldom to judge (no validation before the last 10%).
        "unjudged": (
            math.nan if verdict.get("to_step") is None else float(verdict.get("from_step") is None)
        ),
        "latent_dim": num(model.get("latent_dim", (config.get("model") or {}).get("latent_dim"))),
        "n_pixels": num(data.get("n_pixels")),
        "data": data.get("name") or (config.get("data") or {}).get("name"),
    }
    if math.isnan(row["latent_dim"]) and kl_dims.size:
        row["latent_dim"] = float(kl_dims.size)
    for k in FINAL_METRICS:
        row[k] = num(final.get(k))
    finite = kl_dims[np.isfinite(kl_dims)]
    row["informative_dims"] = float((finite >= INFORMATIVE_KL).sum()) if finite.size else math.nan
    row["max_dim_kl"] = float(finite.max()) if finite.size else math.nan
    s2 = row["sigma2_eff"]
    row["sigma_eff"] = math.sqrt(s2) if s2 > 0 else math.nan
    row["sigma_eff_255"] = row["sigma_eff"] * 255.0
    row["grad_ratio"] = (
        row["grad_norm_kl"] / row["grad_norm_recon"] if row["grad_norm_recon"] > 0 else math.nan
    )
    eval_cfg = config.get("eval") or {}
    n_val, cap = num(data.get("n_val")), num(eval_cfg.get("mi_images"))
    n_mi = min(cap, n_val) if cap > 0 and n_val > 0 else (n_val if n_val > 0 else cap)
    row["mi_ceiling"] = math.log(n_mi) if n_mi > 0 else math.nan
    row["mi_saturated"] = (
        float(row["mi"] >= MI_SATURATION * row["mi_ceiling"])
        if math.isfinite(row["mi"]) and math.isfinite(row["mi_ceiling"])
        else math.nan
    )
    iwae = s.get("iwae") or {}
    row["iwae_nll"] = num(iwae.get("nll"))
    row["bpd"] = num(iwae.get("bpd"))
    row["iwae_elbo_nll"] = num(iwae.get("elbo_nll"))
    row["iwae_samples"] = num(iwae.get("samples"))
    # Factor datasets: the headline disentanglement scores (disentanglement.json has details).
    scores = s.get("disentanglement") or {}
    for k in contract.DISENTANGLEMENT_SCORES:
        row[k] = num(scores.get(k))
    calib = iwae.get("calibrated") or {}
    row["iwae_calib_bpd"] = num(calib.get("bpd"))
    row["binarize"] = (config.get("data") or {}).get("binarize")
    row.update(_convergence(run, row))
    # One verdict for the tables and the reading: a run whose β_t or learned σ still moved has
    # not converged, even if its objective (which that move may have held up) had settled.
    row["objective_converged"] = row["converged"]
    if row["unsettled"]:
        row["converged"] = 0.0
    row["total_variance"] = spectrum.total_variance if spectrum else math.nan
    row["lambda_1"] = float(spectrum.eigenvalues[0]) if spectrum else math.nan
    row.update(_linear(spectrum, row))
    row["wall_time_s"] = num(s.get("wall_time_s"))
    # A stack member's wall time is its stack's: the K runs trained together in one process.
    row["stack_size"] = num((s.get("timings") or {}).get("stack_size"))
    implausible = _implausible(row)
    finite = math.isfinite(row["kl"]) and math.isfinite(row["sse"]) and not implausible
    row["usable"] = bool(run.status == contract.COMPLETED and finite)
    # A run still training (or stopped) with a validation epoch: compared only when no run has
    # finished (:func:`vaesweep.report.data.aggregate.build_sweep`), its numbers provisional.
    row["partial"] = bool(run.status in (contract.RUNNING, contract.INTERRUPTED) and finite)
    if implausible:
        run.problems.append(f"{implausible}: left out of the final-value plots")
    row["error"] = run.error or ""
    row["problems"] = "; ".join(run.problems)
    # The code that made it (record/provenance.py): "" where the record does not say.
    versions = s.get("versions") or {}
    row["code_commit"] = str(versions.get(COMMIT_KEY) or "")
    row["code_modified"] = versions.get(MODIFIED_KEY) is True
    return row


def objective_convergence(run: Run) -> dict[str, Any]:
    """summary.json's ``convergence``; in a record written before its fall was a share of the
    window's start (no ``relative_to``: it divided by the end value, 33.5% for a fall from 4.563
    to 3.419), measured again from metrics.csv by the same rule, so every run reads alike."""
    s = run.summary or {}
    recorded = s.get("convergence")
    if not isinstance(recorded, dict):
        return {}
    m = run.metrics
    if recorded.get("relative_to") == RELATIVE_TO or m is None or "loss" not in m:
        return recorded
    rows = m[m["split"] == "val"].dropna(subset=["step", "loss"])
    total = num(s.get("steps"))
    again = from_rows(
        [
            {str(k): v for k, v in r.items()}
            for r in rows[["split", "step", "loss"]].to_dict("records")
        ],
        int(total) if math.isfinite(total) else 0,
        finished=run.status != "diverged",
    )
    return again if again.get("rel_change") is not None else recorded


def _steps_done(run: Run, s: dict[str, Any], final: dict[str, Any]) -> float:
    """Optimiser steps the run did: summary.json's progress or its last metrics row, whichever
    is later; the planned steps only for a completed record that lacks both."""
    done = max(num(s.get("step")), num(final.get("step")), key=_or_minus_inf)
    if math.isnan(done) and run.status == "completed":
        return num(s.get("steps"))
    return done


def _implausible(row: dict[str, Any]) -> str:
    """Why the final values cannot be a trained VAE's (empty when they can): a KL below zero
    beyond rounding, a negative squared error, or values past what float32 training holds."""
    kl, sse = row["kl"], row["sse"]
    if kl < -KL_ROUNDING:
        return f"its final KL ({kl:.4g} nats) is negative"
    if sse < 0:
        return f"its final squared error ({sse:.4g}) is negative"
    if any(abs(v) > FLOAT32_MAX or 0 < abs(v) < FLOAT32_TINY for v in (kl, sse)):
        return "its final values lie outside the float32 range the run trained in"
    return ""


def _flag(value: Any) -> float:
    return float(value) if isinstance(value, bool) else math.nan


def _linear(spectrum: Spectrum | None, row: dict[str, Any]) -> dict[str, float]:
    """The linear VAE at the run's noise level (same beta) and at the run's rate (same R)."""
    out = dict.fromkeys(
        (
            "lin_active_units",
            "lin_components_above",
            "lin_rate",
            "lin_sse",
            "lin_sse_at_rate",
            "sse_above_linear",
        ),
        math.nan,
    )
    m = row["latent_dim"]
    if spectrum is None or not m > 0:
        return out
    s2 = row["sigma2_eff"]
    if row["likelihood"] in GAUSSIAN and 0 < s2 < math.inf:
        p = water_filling(spectrum, int(m), s2)
        out.update(lin_active_units=float(p.active_units), lin_rate=p.rate, lin_sse=p.sse)
        # Uncapped: how many components clear sigma^2, whatever M (at most the kept spectrum).
        out["lin_components_above"] = float((spectrum.eigenvalues > s2).sum())
    if math.isfinite(row["kl"]):
        out["lin_sse_at_rate"] = sse_at_rate(spectrum, int(m), max(row["kl"], 0.0))
        out["sse_above_linear"] = row["sse"] - out["lin_sse_at_rate"]
    return out


#: Share of the run (last epochs) over which a controller's beta_t or a learned decoder sigma
#: must have settled.
SETTLE_SHARE = 0.2
#: Relative change over that window above which the quantity is still moving.
SETTLE_TOLERANCE = 0.05


def _convergence(run: Run, row: dict[str, Any]) -> dict[str, Any]:
    """Whether beta_t (controllers, schedules) and a learned decoder sigma settled.

    Compares each validation value at the last epoch with the value SETTLE_SHARE of the
    epochs earlier: a relative change above SETTLE_TOLERANCE means "still moving", and the
    final numbers are a snapshot of a moving target, not the method's equilibrium.
    """
    out: dict[str, Any] = {"beta_t_change": math.nan, "sigma_change": math.nan, "unsettled": ""}
    m = run.metrics
    if m is None or m.empty or "epoch" not in m:
        return out
    val = m[m["split"] == "val"] if (m["split"] == "val").any() else m
    val = val.sort_values("epoch")
    if len(val) < 3:
        return out
    last = float(val["epoch"].iloc[-1])
    start = last - max(1.0, SETTLE_SHARE * last)
    moving = []
    for col, key, name in (
        ("beta_t", "beta_t_change", "β_t"),
        ("decoder_sigma", "sigma_change", "the learned decoder σ"),
    ):
        if col not in val or (col == "beta_t" and row.get("method") in (None, "constant")):
            continue
        v = pd.to_numeric(val[col], errors="coerce")
        ok = v.notna() & np.isfinite(v)
        before = v[ok & (val["epoch"] <= start)]
        if before.empty or not ok.iloc[-1]:
            continue
        a, b = float(before.iloc[-1]), float(v.iloc[-1])
        change = (b - a) / abs(a) if a != 0 else math.nan
        out[key] = change
        if math.isfinite(change) and abs(change) > SETTLE_TOLERANCE:
            moving.append(name)
    out["unsettled"] = ", ".join(moving)
    return out
