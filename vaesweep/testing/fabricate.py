"""Synthetic run records, written with the real writer code, for tests, benchmarks and demos.

Runs are written through :class:`vaesweep.record.RunRecord` (metrics.csv, summary.json),
:func:`vaesweep.record.images.save_grid` (the PNG grids) and :class:`vaesweep.record.sweep_plan.SweepPlan`
(sweep.json), so the report reads exactly what a real sweep leaves on disk. The numbers follow the
linear-Gaussian model of Lucas et al. 2019, "Don't Blame the ELBO!" (a VAE that trains towards the
reverse water-filling optimum at sigma^2 = beta_sum / 2), plus a small seed-dependent excess, so
sweeps look like real ones: the rate falls and the error rises with beta, dimensions switch off
where eigenvalues fall below sigma^2. Never imported by the report itself (the grids need torch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.config import KL_SCHEMAS, Config, ConvConfig, LossConfig, TrainConfig, WarmupKL
from vaesweep.evaluation.convergence import RELATIVE_TO
from vaesweep.record import RunRecord
from vaesweep.record.run_record import last_rows
from vaesweep.report.data.linear_reference import Spectrum, water_filling
from vaesweep.testing.grids import SHAPE, write_grids

#: A 64-pixel spectrum shaped like 8x8 digits (per-image SSE units, pixels in [0, 1]).
EIGENVALUES = [0.7 * 0.8**i for i in range(48)]
PCA = {
    "eigenvalues": EIGENVALUES,
    "total_variance": float(sum(EIGENVALUES)) + 0.05,
    "n_images": 1617,
}
N_VAL = 180


def config(
    beta: float,
    seed: int,
    epochs: int,
    latent_dim: int,
    likelihood: str,
    reduction: str,
    method: str,
) -> dict[str, Any]:
    """The resolved config dict a real run with these settings records: the schema's defaults
    (:class:`vaesweep.config.Config`) with the given values, as ``Config.to_dict()`` writes it.

    The schema validates the values, so a fabricated run can only claim a config that
    ``vaesweep train`` could have run. A warm-up lasts half the run, as the curves assume.
    """
    kl_schema = KL_SCHEMAS[method]
    kl = kl_schema(epochs=max(1.0, epochs / 2)) if kl_schema is WarmupKL else kl_schema()
    cfg = Config(
        model=ConvConfig(latent_dim=latent_dim),
        loss=LossConfig(likelihood=likelihood, recon_reduction=reduction),
        kl=kl,
        train=TrainConfig(epochs=epochs),
        beta=beta,
        seed=seed,
    )
    return cfg.to_dict()


def _override(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in the config dict as written, without the schema's checks, so a
    test can plant a value no real run records (a hostile dataset name, an unknown key)."""
    node = cfg
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value


def _beta_t(method: str, beta: float, epoch: int, epochs: int) -> float:
    if method == "warmup":
        return beta * min(1.0, epoch / max(1.0, epochs / 2))
    if method == "geco":  # a controller that drives the weight down as the error target is met
        return beta * 10.0 ** (-3.0 * epoch / epochs)
    return beta


def _row(
    spectrum: Spectrum,
    m: int,
    d: int,
    beta_t: float,
    scale: float,
    progress: float,
    excess: float,
    likelihood: str,
) -> tuple[dict[str, float], list[float]]:
    """One split's metrics at a fraction ``progress`` of the way to the linear optimum."""
    progress_kl = progress * (1 - excess)  # seeds differ a little in rate too
    beta_sum = beta_t / scale
    s2 = max(beta_sum / 2, 1e-12)
    lin = water_filling(spectrum, m, s2)
    lam = spectrum.top(m)
    kl_dims = [
        (0.5 * math.log(v / s2) if v > s2 else 0.0) * progress_kl + 0.002 for v in lam[:m]
    ] + [0.002] * max(0, m - lam.size)
    kl = float(sum(kl_dims))
    tv = spectrum.total_variance
    sse = tv - (tv - lin.sse) * progress + excess
    mse = sse / d
    nll = sse + 0.5 * d * math.log(math.pi) if likelihood == "mse" else sse * 0.9
    mi = min(kl, math.log(N_VAL)) * 0.95
    row = {
        "beta_t": beta_t,
        "loss": scale * sse + beta_t * kl,
        "recon": sse if likelihood == "mse" else nll,
        "nll": nll,
        "kl": kl,
        "elbo": -(nll + kl),
        "elbo_calib": -(0.5 * d * math.log(2 * math.pi * math.e * mse) + kl),
        "sse": sse,
        "mse": mse,
        "psnr": -10 * math.log10(mse),
        "active_units": float(sum(1 for v in kl_dims if v > 0.01)),
        "beta_sum": beta_sum,
        "beta_norm": beta_sum * m / d,
        "sigma2_eff": s2 if likelihood in ("mse", "gaussian") else math.nan,
        "beta_calib": s2 / mse if likelihood in ("mse", "gaussian") else math.nan,
        "seconds": 0.1,
        "images_per_sec": 15000.0,
        "lr": 0.001,
        "mi": mi,
        "marginal_kl": kl - mi,
        "grad_norm_recon": 0.1 * (1 + excess),
        "grad_norm_kl": 0.1 * min(1.0, beta_sum) * progress + 1e-4,
    }
    return row, kl_dims


def fabricate_run(
    run_dir: Path,
    *,
    beta: float,
    seed: int = 0,
    epochs: int = 5,
    latent_dim: int = 8,
    likelihood: str = "mse",
    reduction: str = "sum",
    method: str = "constant",
    status: str = "completed",
    diverge_at: int | None = None,
    pca: dict[str, Any] | None = PCA,
    images: bool = True,
    overrides: dict[str, Any] | None = None,
    converged: bool | None = None,
    rel_change: float | None = None,
) -> dict[str, Any]:
    """Write one run directory; return its summary.

    ``converged`` writes ``summary["convergence"]`` with a fall of 0.2% (True) or 3% (False)
    over the last 10% of steps; None leaves it out, as records written before it existed.
    ``rel_change`` replaces that fall (negative: the objective rose, which counts as converged).

    ``status="diverged"`` stops at epoch ``diverge_at`` (default 2) with a NaN loss, as the
    trainer records it (``diverge_at=0``: within the first epoch, before any metrics row);
    ``"failed"`` stops before any epoch; ``"running"`` stops half-way without an end, as a
    killed process leaves it.
    """
    d = int(np.prod(SHAPE))
    scale = 1.0 / d if reduction == "mean" else 1.0
    spectrum = Spectrum.from_summary({"data": {"pca": pca or PCA}})
    assert spectrum is not None
    rng = np.random.default_rng(seed * 7919 + int(abs(math.log10(beta + 1e-12)) * 100))
    cfg = config(beta, seed, epochs, latent_dim, likelihood, reduction, method)
    for key, value in (overrides or {}).items():
        _override(cfg, key, value)
    record = RunRecord(run_dir)
    record.update_summary(
        status="running",
        error=None,
        error_kind=None,
        name=run_dir.name,
        beta=beta,
        seed=seed,
        overrides=[f"beta={beta}", f"seed={seed}"],
        epochs=epochs,
        config=cfg,
        data={
            "name": cfg["data"]["name"],
            "shape": list(SHAPE),
            "n_pixels": d,
            "n_train": 1617,
            "n_val": N_VAL,
            "n_test": None,
            "source": "fabricated",
            "notes": [],
            **({"pca": pca} if pca else {}),
        },
        model={"arch": cfg["model"]["arch"], "latent_dim": latent_dim, "parameters": 1000},
    )
    last = {"failed": 0, "running": max(1, epochs // 2)}.get(status, epochs)
    if status == "diverged":
        last = 2 if diverge_at is None else diverge_at
    excess = 0.05 * rng.random()
    for epoch in range(1, last + 1):
        progress = 1 - 0.7 ** (epoch + 1)
        bt = _beta_t(method, beta, epoch, epochs)
        val, kl_val = _row(spectrum, latent_dim, d, bt, scale, progress, excess, likelihood)
        train, kl_train = _row(
            spectrum, latent_dim, d, bt, scale, progress, excess * 0.8, likelihood
        )
        if status == "diverged" and epoch == last:
            for row in (train, val):
                row.update(loss=math.nan, recon=math.inf, sse=math.inf, kl=math.nan)
        rows = {"train": (train, kl_train), "val": (val, kl_val)}
        record.append_epoch(epoch, epoch * 26, beta, rows)
        record.update_summary(epochs_done=epoch, step=epoch * 26, final=last_rows(record.rows))
    end: dict[str, Any] = {"wall_time_s": 1.0 + rng.random()}
    if status == "diverged":
        # Within epoch 1 the trainer stops at the step whose loss is not finite, before the
        # epoch's rows: no metrics.csv and no epochs_done, and its error in the trainer's words.
        error = (
            f"loss became nan at epoch {last}, step {last * 26}"
            if last
            else "non-finite loss (nan) at epoch 1, step 3: recon=nan, kl=nan"
        )
        end.update(status="diverged", error=error, error_kind="numeric")
    elif status == "failed":
        end.update(status="failed", error="UserError: no such dataset", error_kind="user")
    elif status == "completed":
        final_val = record.rows[-1]
        kl_dims = [final_val[f"kl_dim_{i}"] for i in range(latent_dim)]
        nll = final_val["nll"]
        end.update(
            status="completed",
            kl_per_dim=kl_dims,
            iwae={
                "nll": nll + final_val["kl"] - 0.3,
                "bpd": (nll + final_val["kl"] - 0.3) / (d * math.log(2)) + 8,
                "samples": 100,
                "images": N_VAL,
                "split": "val",
                "dequantized": True,
            },
            images=write_grids(record, final_val["sse"] / spectrum.total_variance, kl_dims)
            if images
            else None,
        )
    if status != "running":
        end["finished"] = "2026-01-01T00:00:00+00:00"
    if converged is not None:
        end["steps"] = epochs * 26
        end["convergence"] = {
            "rule": "fabricated",
            "tolerance": 0.01,
            "window": 0.1,
            "from_step": (epochs - 1) * 26,
            "to_step": epochs * 26,
            "rel_change": rel_change if rel_change is not None else (0.002 if converged else 0.03),
            "relative_to": RELATIVE_TO,
            "converged": converged,
        }
    return record.update_summary(**end)


#: The config key a sweep names for each :func:`fabricate_run` setting it can cross with beta.
CROSSABLE = {
    "latent_dim": "model.latent_dim",
    "likelihood": "loss.likelihood",
    "reduction": "loss.recon_reduction",
    "epochs": "train.epochs",
}


def fabricate_sweep(
    sweep_dir: Path,
    betas: list[float],
    seeds: list[int] | None = None,
    *,
    methods: list[str] | None = None,
    statuses: dict[str, str] | None = None,
    crossed: dict[str, list[Any]] | None = None,
    **kwargs: Any,
) -> list[Path]:
    """A sweep directory with sweep.json and one run per (method, crossed values, beta, seed).

    Run names follow the sweep driver's ``key=value,key=value``; ``statuses`` maps a run name
    to a non-completed status for partial sweeps. ``crossed`` maps settings of
    :data:`CROSSABLE` (``{"latent_dim": [8, 16]}``) to the values the grid crosses with beta,
    named in the run names and sweep.json by their config keys, as a real grid sweep names them.
    """
    from itertools import product

    from vaesweep.record.sweep_plan import PlannedRun, SweepPlan

    seeds = seeds or [0]
    methods = methods or ["constant"]
    crossed = crossed or {}
    extra = [CROSSABLE[k] for k in crossed]
    keys = (
        (["kl"] if len(methods) > 1 else [])
        + extra
        + ["beta"]
        + (["seed"] if len(seeds) > 1 else [])
    )
    planned, dirs = [], []
    for method, combo, beta, seed in product(methods, product(*crossed.values()), betas, seeds):
        settings = dict(zip(crossed, combo))
        values = {"kl": method, "beta": f"{beta:g}", "seed": str(seed)}
        values |= {CROSSABLE[k]: str(v) for k, v in settings.items()}
        values = {k: values[k] for k in keys}
        name = ",".join(f"{k}={v}" for k, v in values.items())
        planned.append(PlannedRun(name, values, [f"{k}={v}" for k, v in values.items()]))
        status = (statuses or {}).get(name, "completed")
        if status == "pending":
            continue
        fabricate_run(
            sweep_dir / name,
            beta=beta,
            seed=seed,
            method=method,
            status=status,
            **settings,
            **kwargs,
        )
        dirs.append(sweep_dir / name)
    SweepPlan(
        name=sweep_dir.name,
        overrides=[],
        swept_keys=keys,
        runs=planned,
    ).save(sweep_dir)
    return dirs
