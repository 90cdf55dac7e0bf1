"""One tidy table of every run (``summary.csv``), assembled with the rest of what the report uses.

Each row is one run: what was swept, its status, the final validation metrics of the contract
(:mod:`vaesweep.record.contract`; nats per image for ``kl``/``elbo``/``nll``, SSE per image for
``sse``, per-pixel ``mse``, dB for ``psnr``), the effective beta set (README, "What beta means"),
the IWAE estimate (Burda et al. 2016), and the linear-Gaussian reference at the run's own noise
level and rate (Lucas et al. 2019); :mod:`~vaesweep.report.data.per_run` computes one row. The swept
values and the grouping of runs into settings come from :mod:`~vaesweep.report.data.grouping`, the
mean and standard deviation over seeds (``seeds.csv``) from :mod:`~vaesweep.report.data.seed_stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vaesweep.record import contract
from vaesweep.report.data.grouping import add_groups, add_swept_columns, swept_keys
from vaesweep.report.data.linear_reference import Spectrum
from vaesweep.report.data.load import Loaded, Run
from vaesweep.report.data.per_run import GAUSSIAN, kl_per_dim, run_row
from vaesweep.report.data.seed_stats import KEY_METRICS, SEED_COLUMNS, join_seed_stats, seed_stats

__all__ = ["SweepRecords", "build_sweep", "summary_columns"]


@dataclass
class SweepRecords:
    """Everything the figures and the reading use, read from disk once."""

    table: pd.DataFrame  # one row per run, index = run key (summary.csv)
    groups: pd.DataFrame  # one row per group: mean/std over seeds (seeds.csv)
    curves: pd.DataFrame  # per-epoch rows of all runs (column "run"), without kl_dim_*
    kl_dims: dict[str, np.ndarray]  # final validation KL per latent dim, per run
    runs: dict[str, Run]
    spectra: dict[str, Spectrum]  # per run with summary["data"]["pca"]
    swept: list[str]  # swept-value columns of the table, in order
    beta_label: str  # what the beta axis shows
    distortion: str  # "sse" or "nll": the R-D plane's y column
    problems: list[str] = field(default_factory=list)
    #: Some usable runs have not finished (still training, or stopped): they are compared at
    #: their latest validation epoch (the table's ``partial`` column).
    partial: bool = False

    @property
    def usable(self) -> pd.DataFrame:
        """Runs with values to compare: finite rate and distortion, final for completed runs
        and the latest epoch's for runs not finished (:attr:`partial`)."""
        return self.table[self.table["usable"]]

    @property
    def methods(self) -> list[str]:
        return sorted(self.table["method"].dropna().unique().tolist())


def build_sweep(loaded: Loaded) -> SweepRecords:
    """Aggregate the loaded runs into the report's tables (see :class:`SweepRecords`)."""
    runs = {r.key: r for r in loaded.runs}
    spectra = {k: sp for k, r in runs.items() if (sp := Spectrum.from_summary(r.summary))}
    rows = [_row(r, spectra.get(k)) for k, r in runs.items()]
    table = pd.DataFrame(rows).set_index("run", drop=False)
    table.index.name = None
    # While a sweep trains (or after it was stopped), runs not finished are compared at their
    # latest epoch, said to be provisional, rather than left out ("one setting" of three).
    partial = bool(table["partial"].any())
    table["usable"] = table["usable"] | table["partial"]
    configs = {k: (r.summary or {}).get("config") or {} for k, r in runs.items()}
    keys = swept_keys(loaded, configs)
    swept = add_swept_columns(table, runs, configs, keys)
    for col in ("seed", "epochs_done", "epochs", "latent_dim", "n_pixels"):
        # Counts stay integers in summary.csv; a missing one is empty, not NaN-as-float.
        # Only counts an int64 holds: a damaged record's 1e20 stays a float, not a crash.
        values = pd.to_numeric(table[col], errors="coerce")
        whole = values.notna() & (values == values.round()) & (values.abs() < 2**53)
        if whole.sum() == table[col].notna().sum():
            table[col] = values.astype("Int64")
    add_groups(table, runs, configs, keys, swept)
    beta_label = _add_beta_axis(table)
    stats = seed_stats(table)
    table = join_seed_stats(table, stats)
    curves = _curves(runs)
    kl_dims = {k: kl_per_dim(r) for k, r in runs.items()}
    gaussian = table["likelihood"].isin(GAUSSIAN) | table["likelihood"].isna()
    lik = table["likelihood"].dropna().unique()
    distortion = "nll" if (not gaussian.any() and len(lik) == 1) else "sse"
    problems = [f"{r.key}: {p}" for r in runs.values() for p in r.problems] + loaded.problems
    return SweepRecords(
        table,
        stats,
        curves,
        kl_dims,
        runs,
        spectra,
        swept,
        beta_label,
        distortion,
        problems,
        partial,
    )


def _row(run: Run, spectrum: Spectrum | None) -> dict[str, Any]:
    """:func:`run_row`, or the row of a run whose values could not be read (kept and listed,
    with the reason among its problems): one odd record must not cost the whole report."""
    try:
        return run_row(run, spectrum)
    except Exception as err:  # reported as the run's problem
        run.problems.append(f"its values could not be read ({type(err).__name__}: {err})")
        bare = Run(run.key, run.name, run.source, run.path, run.status, run.error)
        bare.problems = run.problems
        return run_row(bare, None)


def _add_beta_axis(table: pd.DataFrame) -> str:
    """``beta_x``: the configured beta for constant runs, the final beta_t otherwise (every
    KL-control method logs beta_t in the same convention, so all share one axis); beta_sum when
    runs differ in their reduction."""
    constant = table["method"].fillna("constant").eq("constant")
    x = table["beta"].where(constant, table["beta_t"])
    label = "β" if constant.all() else "β (final β_t for scheduled/controlled runs)"
    if table["recon_reduction"].dropna().nunique() > 1:
        x = table["beta_sum"].where(table["beta_sum"].notna(), x)
        label = "β_sum (canonical: recon and KL summed per image)"
    table["beta_x"] = x
    return label


def _curves(runs: dict[str, Run]) -> pd.DataFrame:
    frames = []
    for key, run in runs.items():
        if run.metrics is None:
            continue
        m = run.metrics
        keep = [c for c in m.columns if not c.startswith(contract.KL_DIM_PREFIX)]
        frames.append(m[keep].assign(run=key))
    if not frames:
        return pd.DataFrame(columns=["run", "epoch", "split"])
    return pd.concat(frames, ignore_index=True, sort=False)


def summary_columns(sweep: SweepRecords) -> list[str]:
    """summary.csv's columns in reading order."""
    t = sweep.table
    head = ["run", "source", *[c for c in sweep.swept if c not in ("beta", "seed")]]
    head += ["method", "beta", "seed", "status", "epochs_done", "epochs"]
    body = [
        *KEY_METRICS,
        "max_dim_kl",
        "beta_t",
        "beta_x",
        "beta_sum",
        "beta_norm",
        "sigma2_eff",
        "sigma_eff",
        "sigma_eff_255",
        "beta_calib",
        "mi",
        "marginal_kl",
        "mi_ceiling",
        "mi_saturated",
        "grad_norm_recon",
        "grad_norm_kl",
        "grad_ratio",
        "grad_cos",
        "iwae_nll",
        "bpd",
        "iwae_elbo_nll",
        "iwae_calib_bpd",
        "iwae_samples",
        *contract.DISENTANGLEMENT_SCORES,
        "beta_t_change",
        "sigma_change",
        "unsettled",
        "total_variance",
        "lambda_1",
        "lin_active_units",
        "lin_components_above",
        "lin_rate",
        "lin_sse",
        "lin_sse_at_rate",
        "sse_above_linear",
        "likelihood",
        "recon_reduction",
        "binarize",
        "latent_dim",
        "n_pixels",
        "data",
        "wall_time_s",
        "usable",
        "partial",
        "group",
        "label",
        "others",
        "n_seeds",
    ]
    stats = [c for c in SEED_COLUMNS if c in t.columns]
    tail = ["error", "problems"]
    # Disentanglement scores only where some run has them (runs on factor datasets).
    absent = {
        c
        for m in contract.DISENTANGLEMENT_SCORES
        if m not in t.columns or t[m].isna().all()
        for c in (m, f"{m}_mean", f"{m}_std")
    }
    cols = [c for c in head + body + stats + tail if c not in absent]
    return list(dict.fromkeys(c for c in cols if c in t.columns))  # first of each, in order
