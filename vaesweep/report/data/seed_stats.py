"""The mean and spread over seeds of every setting (``seeds.csv``).

Runs that differ only in their seed form a *group*, a "setting"
(:mod:`vaesweep.report.data.grouping`); every group gets the mean and standard deviation (ddof = 1)
over its seeds of the key metrics, and the mean of the reference values the reading quotes.
"""

from __future__ import annotations

import pandas as pd

#: The metrics a reader looks at first, in reading order: they open both summary.csv's metric
#: columns and :data:`SEED_METRICS`.
KEY_METRICS = (
    "recon",
    "kl",
    "elbo",
    "elbo_calib",
    "sse",
    "mse",
    "psnr",
    "active_units",
    "informative_dims",
)
#: Metrics averaged over seeds (mean and std columns in summary.csv and seeds.csv).
SEED_METRICS = (
    *KEY_METRICS,
    "beta_x",
    "beta_calib",
    "mi",
    "marginal_kl",
    "iwae_nll",
    "bpd",
    "sse_above_linear",
    "grad_ratio",
)
#: seeds.csv's mean and std column of each of :data:`SEED_METRICS`, in order.
SEED_COLUMNS = tuple(f"{m}_{s}" for m in SEED_METRICS for s in ("mean", "std"))
#: Reference values the reading quotes per group: their mean over seeds goes into seeds.csv.
GROUP_MEANS = (
    "beta",
    "beta_t",
    "beta_sum",
    "sigma2_eff",
    "sigma_eff",
    "sigma_eff_255",
    "max_dim_kl",
    "mi_ceiling",
    "lin_active_units",
    "lin_rate",
    "lin_sse",
    "lin_sse_at_rate",
    "total_variance",
    "lambda_1",
    "latent_dim",
    "n_pixels",
    "iwae_samples",
    "epochs_done",
)


def seed_stats(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group: mean and standard deviation (ddof = 1; NaN for one seed) over its
    usable runs of :data:`SEED_METRICS`, the mean of :data:`GROUP_MEANS`, and the counts.

    Only runs with final values count; a group whose runs all failed has ``n_seeds = 0``.
    """
    cols = [c for c in SEED_METRICS if c in table.columns]
    extra = [c for c in GROUP_MEANS if c in table.columns and c not in cols]
    ok = table[table["usable"]]
    grouped = ok.groupby("group", sort=False)
    mean = grouped[cols + extra].mean().add_suffix("_mean")
    std = grouped[cols].std(ddof=1).add_suffix("_std")
    n = grouped.size().rename("n_seeds")
    first = table.drop_duplicates("group").set_index("group")
    keep = [
        c
        for c in ("label", "beta_name", "others", "method", "likelihood", "recon_reduction", "data")
        if c in first
    ]
    out = first[keep].join(n).join(mean).join(std)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["n_runs"] = table.groupby("group", sort=False).size()
    ordered = [*keep, "n_seeds", "n_runs"]
    for c in cols + extra:
        ordered += [f"{c}_mean"] + ([f"{c}_std"] if c in cols else [])
    out = out[[c for c in ordered if c in out.columns]]
    return out.sort_values(["beta_x_mean", "label"], na_position="last")


def join_seed_stats(table: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each run's group count and :data:`SEED_METRICS` mean/std columns."""
    table = table.join(stats[["n_seeds", *[c for c in SEED_COLUMNS if c in stats]]], on="group")
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    return table
