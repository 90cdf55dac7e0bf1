"""One tidy table of every run (``summary.csv``) and its mean and spread over seeds.

Each row is one run: what was swept, its status, the final validation metrics of the contract
(:mod:`vaesweep.record.contract`; nats per image for ``kl``/``elbo``/``nll``, SSE per image for
``sse``, per-pixel ``mse``, dB for ``psnr``), the effective beta set (science notes 2.2), the
IWAE estimate, and the linear-Gaussian reference at the run's own noise level and rate (science
notes 2.4). Runs that share their swept values except the seed (without a sweep plan: their
whole config except the seed) form a *group*, a "setting"; every group gets the mean and
standard deviation (ddof = 1) over its seeds of the key metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vaesweep.record import contract
from vaesweep.report.linear_reference import Spectrum
from vaesweep.report.load import Loaded, Run
from vaesweep.report.per_run import (
    FINAL_METRICS,
    GAUSSIAN,
    INFORMATIVE_KL,
    flatten,
    kl_per_dim,
    run_row,
)

__all__ = ["GAUSSIAN", "INFORMATIVE_KL", "Sweep", "build_sweep", "seed_stats", "summary_columns"]

#: Config keys that differ between runs without changing what is trained.
NOISE_KEYS = frozenset(
    {
        "seed",
        "train.threads",
        "train.progress",
        "train.device",
        "data.root",
        "data.cache_dir",
        "data.download",
    }
)
#: Metrics averaged over seeds (mean and std columns in summary.csv and seeds.csv).
SEED_METRICS = (
    "recon",
    "kl",
    "elbo",
    "elbo_calib",
    "sse",
    "mse",
    "psnr",
    "active_units",
    "informative_dims",
    "beta_x",
    "beta_calib",
    "mi",
    "marginal_kl",
    "iwae_nll",
    "bpd",
    "sse_above_linear",
    "grad_ratio",
)
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
#: Column names the report owns; a swept key with one of these names gets " (swept)".
RESERVED = frozenset(
    {
        "run",
        "source",
        "group",
        "label",
        "method",
        "status",
        "error",
        *FINAL_METRICS,
        *SEED_METRICS,
    }
)


@dataclass
class Sweep:
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

    @property
    def usable(self) -> pd.DataFrame:
        """Runs with final values: completed and finite rate and distortion."""
        return self.table[self.table["usable"]]

    @property
    def methods(self) -> list[str]:
        return sorted(self.table["method"].dropna().unique().tolist())


# ----------------------------------------------------------------------------- helpers


def _config_value(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):  # a config group (kl=warmup): name it by its method/name
        for k in ("method", "name", "arch", "likelihood"):
            if k in node:
                return node[k]
        return json.dumps(node, sort_keys=True)
    return node


def _swept_keys(loaded: Loaded, configs: dict[str, dict[str, Any]]) -> list[str]:
    """Plan keys first; then config keys that differ between runs and no plan key covers."""
    keys: list[str] = []
    for source in loaded.sources:
        keys += [k for k in source.swept_keys if k not in keys]
    flat = [flatten(c) for c in configs.values() if c]
    if len(flat) > 1:
        names = sorted(set().union(*flat))
        differing = [
            k
            for k in names
            if k not in NOISE_KEYS
            and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
        ]
        for k in differing:
            covered = any(k == s or k.startswith(s + ".") for s in keys)
            # Parameters of one method (kl.lam) vary only because the method varies.
            if not covered and not (k.startswith("kl.") and k != "kl.method"):
                keys.append(k)
    if "seed" in keys:  # seed last: it is averaged over, not a parameter
        keys = [k for k in keys if k != "seed"] + ["seed"]
    return keys[:8]


def _column(key: str) -> str:
    return f"{key} (swept)" if key in RESERVED and key not in ("beta", "seed") else key


def _label_part(key: str, value: Any) -> str:
    text = _fmt_value(value)
    if key == "beta":
        return f"β={text}"
    if key in ("kl", "kl.method"):
        return text
    return f"{key.split('.')[-1]}={text}"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _signature(config: dict[str, Any]) -> str:
    flat = {k: v for k, v in flatten(config).items() if k not in NOISE_KEYS}
    return json.dumps(flat, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- tables


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


def build_sweep(loaded: Loaded) -> Sweep:
    """Aggregate the loaded runs into the report's tables (see :class:`Sweep`)."""
    runs = {r.key: r for r in loaded.runs}
    spectra = {k: sp for k, r in runs.items() if (sp := Spectrum.from_summary(r.summary))}
    rows = [run_row(r, spectra.get(k)) for k, r in runs.items()]
    table = pd.DataFrame(rows).set_index("run", drop=False)
    table.index.name = None
    configs = {k: (r.summary or {}).get("config") or {} for k, r in runs.items()}
    keys = _swept_keys(loaded, configs)
    swept: list[str] = []
    for key in keys:
        col = _column(key)
        if col in table.columns and col not in ("beta", "seed"):
            col = f"{key} (swept)"
        if col in ("beta", "seed"):
            swept.append(col)
            continue
        vals = []
        for k, r in runs.items():
            v = r.values.get(key)
            if v is None:
                v = _config_value(configs[k], key)
            vals.append(v)
        table.insert(2 + len(swept), col, vals)
        swept.append(col)
    for col in ("seed", "epochs_done", "epochs", "latent_dim", "n_pixels"):
        # Counts stay integers in summary.csv; a missing one is empty, not NaN-as-float.
        whole = table[col].notna() & (table[col] == table[col].round())
        if whole.sum() == table[col].notna().sum():
            table[col] = table[col].astype("Int64")
    _add_groups(table, runs, configs, keys, swept)
    beta_label = _add_beta_axis(table)
    stats = seed_stats(table)
    seed_cols = [f"{m}_{s}" for m in SEED_METRICS for s in ("mean", "std")]
    table = table.join(stats[["n_seeds", *[c for c in seed_cols if c in stats]]], on="group")
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    curves = _curves(runs)
    kl_dims = {k: kl_per_dim(r) for k, r in runs.items()}
    gaussian = table["likelihood"].isin(GAUSSIAN) | table["likelihood"].isna()
    lik = table["likelihood"].dropna().unique()
    distortion = "nll" if (not gaussian.any() and len(lik) == 1) else "sse"
    problems = [f"{r.key}: {p}" for r in runs.values() for p in r.problems] + loaded.problems
    return Sweep(
        table, stats, curves, kl_dims, runs, spectra, swept, beta_label, distortion, problems
    )


def _add_groups(
    table: pd.DataFrame,
    runs: dict[str, Run],
    configs: dict[str, dict[str, Any]],
    keys: list[str],
    swept: list[str],
) -> None:
    groups, labels, others = [], [], []
    params = [(k, c) for k, c in zip(keys, swept) if k != "seed"]
    # Name groups by what varies; a key swept over one value (beta=1 in a methods sweep) only
    # when nothing else does.
    varying = [(k, c) for k, c in params if table[c].astype(str).nunique() > 1]
    params = varying or params
    for key, run in runs.items():
        row = table.loc[key]
        parts = [_label_part(k, row[c]) for k, c in params if row[c] is not None]
        label = ", ".join(parts) if parts else run.name
        # What else differs besides beta: the reading compares betas only within one of these.
        others.append(
            ", ".join(
                f"{k}={_fmt_value(row[c])}" for k, c in params if k != "beta" and row[c] is not None
            )
        )
        if configs[key]:
            group = f"{run.source}|{_signature(configs[key])}" if not params else label
        else:  # no config: the swept values (without seed) still say what the run was
            group = label if parts else key
        groups.append(group)
        labels.append(label)
    table["group"] = groups
    table["others"] = others
    table["beta_name"] = [f"β={b:g}" if b == b else "β=?" for b in table["beta"]]
    # Two different configs that print the same label get numbered apart.
    first_label: dict[str, str] = {}
    for g, lab in zip(groups, labels):
        first_label.setdefault(g, lab)
    seen: dict[str, int] = {}
    final: dict[str, str] = {}
    for g, lab in first_label.items():
        seen[lab] = seen.get(lab, 0) + 1
        final[g] = lab if seen[lab] == 1 else f"{lab} #{seen[lab]}"
    table["label"] = [final[g] for g in groups]


def _add_beta_axis(table: pd.DataFrame) -> str:
    """``beta_x``: the configured beta for constant runs, the final beta_t otherwise (science
    notes 2.2: every method on one axis); beta_sum when runs differ in their reduction."""
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


def summary_columns(sweep: Sweep) -> list[str]:
    """summary.csv's columns in reading order."""
    t = sweep.table
    head = ["run", "source", *[c for c in sweep.swept if c not in ("beta", "seed")]]
    head += ["method", "beta", "seed", "status", "epochs_done", "epochs"]
    body = [
        "recon",
        "kl",
        "elbo",
        "elbo_calib",
        "sse",
        "mse",
        "psnr",
        "active_units",
        "informative_dims",
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
        "grad_norm_recon",
        "grad_norm_kl",
        "grad_ratio",
        "iwae_nll",
        "bpd",
        "iwae_samples",
        "total_variance",
        "lambda_1",
        "lin_active_units",
        "lin_rate",
        "lin_sse",
        "lin_sse_at_rate",
        "sse_above_linear",
        "likelihood",
        "recon_reduction",
        "latent_dim",
        "n_pixels",
        "data",
        "wall_time_s",
        "usable",
        "group",
        "label",
        "others",
        "n_seeds",
    ]
    stats = [c for m in SEED_METRICS for c in (f"{m}_mean", f"{m}_std") if c in t.columns]
    tail = ["error", "problems"]
    cols = head + body + stats + tail
    seen: set[str] = set()
    return [c for c in cols if c in t.columns and not (c in seen or seen.add(c))]
