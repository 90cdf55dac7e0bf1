"""Aggregation: run records written by the real writer code into summary.csv and seeds.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaesweep.record.files import read_metrics_csv
from vaesweep.report.build import build_report
from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.linear_reference import Spectrum, sse_at_rate, water_filling
from vaesweep.report.data.load import load
from vaesweep.testing.fabricate import PCA, fabricate_run, fabricate_sweep

BETAS = [0.01, 0.1, 1.0, 8.0]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agg") / "grid"
    fabricate_sweep(root, BETAS, SEEDS, images=False)
    return root


@pytest.fixture(scope="module")
def summary(sweep_dir: Path) -> pd.DataFrame:
    build_report([sweep_dir])
    return pd.read_csv(sweep_dir / "report" / "summary.csv")


@pytest.mark.slow
def test_one_row_per_run_with_the_final_validation_values(
    sweep_dir: Path, summary: pd.DataFrame
) -> None:
    assert len(summary) == len(BETAS) * len(SEEDS)
    assert set(summary["status"]) == {"completed"}
    for _, row in summary.iterrows():
        run = sweep_dir / row["run"]
        written = [r for r in read_metrics_csv(run / "metrics.csv") if r["split"] == "val"][-1]
        meta = json.loads((run / "summary.json").read_text())
        assert row["beta"] == meta["beta"] and row["seed"] == meta["seed"]
        for col in ("recon", "kl", "elbo", "mse", "psnr", "active_units", "beta_sum"):
            assert row[col] == pytest.approx(written[col], rel=1e-12), col
        assert row["sigma2_eff"] == pytest.approx(written["beta_sum"] / 2)
        assert row["sigma_eff_255"] == pytest.approx(255 * math.sqrt(written["sigma2_eff"]))
        assert row["iwae_nll"] == pytest.approx(meta["iwae"]["nll"])
        assert row["wall_time_s"] == pytest.approx(meta["wall_time_s"])
        assert row["epochs_done"] == meta["epochs_done"]
        kl_dims = np.array(meta["kl_per_dim"])
        assert row["informative_dims"] == (kl_dims >= 0.1).sum()


@pytest.mark.slow
def test_swept_values_and_groups(summary: pd.DataFrame) -> None:
    assert list(summary.columns[:5]) == ["run", "source", "method", "beta", "seed"]
    assert summary.groupby("label")["seed"].apply(sorted).to_dict() == {
        f"β={b:g}": SEEDS for b in BETAS
    }
    assert (summary["n_seeds"] == len(SEEDS)).all()


@pytest.mark.slow
def test_seed_mean_and_std(sweep_dir: Path, summary: pd.DataFrame) -> None:
    seeds = pd.read_csv(sweep_dir / "report" / "seeds.csv", index_col="group")
    assert len(seeds) == len(BETAS)
    for beta in BETAS:
        rows = summary[summary["beta"] == beta]
        g = seeds.loc[f"β={beta:g}"]
        for col in ("kl", "sse", "elbo", "psnr", "iwae_nll"):
            values = rows[col].to_numpy()
            assert g[f"{col}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert g[f"{col}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
            # summary.csv repeats the group's statistics on each of its runs
            assert np.allclose(rows[f"{col}_mean"], values.mean(), rtol=1e-12)
        assert g["n_seeds"] == len(SEEDS)
    # seeds.csv is ordered by beta
    assert list(seeds["beta_x_mean"]) == pytest.approx(sorted(BETAS))


@pytest.mark.slow
def test_linear_reference_columns(summary: pd.DataFrame) -> None:
    sp = Spectrum.from_summary({"data": {"pca": PCA}})
    assert sp is not None
    for _, row in summary.iterrows():
        p = water_filling(sp, int(row["latent_dim"]), row["sigma2_eff"])
        assert row["lin_active_units"] == p.active_units
        assert row["lin_rate"] == pytest.approx(p.rate)
        assert row["lin_sse"] == pytest.approx(p.sse)
        expected = sse_at_rate(sp, int(row["latent_dim"]), row["kl"])
        assert row["sse_above_linear"] == pytest.approx(row["sse"] - expected)
        assert row["total_variance"] == pytest.approx(PCA["total_variance"])


def test_failed_runs_do_not_enter_the_seed_statistics(tmp_path: Path) -> None:
    root = tmp_path / "partial"
    fabricate_sweep(root, [0.1], [0, 1, 2], statuses={"beta=0.1,seed=2": "diverged"}, images=False)
    sweep = build_sweep(load([root]))
    t = sweep.table
    assert list(t["usable"]) == [True, True, False]
    g = sweep.groups.iloc[0]
    assert g["n_seeds"] == 2 and g["n_runs"] == 3
    assert g["kl_mean"] == pytest.approx(t["kl"].iloc[:2].mean())


def test_a_swept_key_named_like_a_metric_keeps_both(tmp_path: Path) -> None:
    # kl=constant,warmup sweeps the config group `kl`; the final KL column must survive.
    root = tmp_path / "methods"
    fabricate_sweep(root, [1.0], methods=["constant", "warmup"], images=False)
    sweep = build_sweep(load([root]))
    t = sweep.table
    assert list(t["kl (swept)"]) == ["constant", "warmup"]
    assert t["kl"].dtype.kind == "f" and (t["kl"] > 0).all()
    assert list(t["method"]) == ["constant", "warmup"]
    assert sweep.beta_label.startswith("β (final β_t")


def test_mean_reduction_is_on_the_canonical_axis(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "runs" / "sum", beta=1.0, images=False)
    fabricate_run(tmp_path / "runs" / "mean", beta=1.0, reduction="mean", images=False)
    sweep = build_sweep(load([tmp_path / "runs"]))
    t = sweep.table.set_index("run")
    assert t.loc["mean", "beta_sum"] == pytest.approx(64.0)  # beta * D
    assert t.loc["mean", "beta_x"] == pytest.approx(64.0)
    assert t.loc["sum", "beta_x"] == pytest.approx(1.0)
    assert "β_sum" in sweep.beta_label
    assert "loss.recon_reduction" in sweep.swept


def test_fabricated_configs_are_real_configs(tmp_path: Path) -> None:
    """The synthetic runs claim configs the schema accepts and rebuilds exactly, so the report
    is tested on what ``vaesweep train`` records, not on a hand-written imitation."""
    from vaesweep.config import Config, ConvConfig, LossConfig, TrainConfig, WarmupKL
    from vaesweep.config.from_dict import config_from_dict

    summary = fabricate_run(
        tmp_path / "run",
        beta=0.5,
        seed=3,
        epochs=4,
        method="warmup",
        reduction="mean",
        images=False,
    )
    expected = Config(
        model=ConvConfig(latent_dim=8),
        loss=LossConfig(recon_reduction="mean"),
        kl=WarmupKL(epochs=2.0),
        train=TrainConfig(epochs=4),
        beta=0.5,
        seed=3,
    )
    assert summary["config"] == expected.to_dict()
    assert config_from_dict(summary["config"]) == expected


def test_a_key_set_in_one_sweep_and_unset_in_another_makes_separate_settings(
    tmp_path: Path,
) -> None:
    # Two sweeps reported together: the default trains by steps (train.epochs unset), the other
    # sets train.epochs. Their runs at one beta are two settings, not seeds of one.
    fabricate_sweep(tmp_path / "by_steps", [0.1, 1.0], overrides={"train.epochs": None})
    fabricate_sweep(tmp_path / "by_epochs", [0.1, 1.0], [0, 1], overrides={"train.epochs": 20})
    sweep = build_sweep(load([tmp_path / "by_steps", tmp_path / "by_epochs"]))
    t = sweep.table
    assert "train.epochs" in sweep.swept
    labels = dict(zip(t["run"], t["label"], strict=True))
    assert labels["by_steps/beta=0.1"] == "β=0.1, epochs=null"
    assert labels["by_epochs/beta=0.1,seed=1"] == "β=0.1, epochs=20"
    assert sorted(sweep.groups["n_seeds"]) == [1, 1, 2, 2]
