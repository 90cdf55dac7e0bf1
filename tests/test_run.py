"""One run end to end through ``run_job``: the record, determinism, divergence, resume guards."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from vaesweep import tensorfile
from vaesweep.bridge import compose as bridge
from vaesweep.record import contract
from vaesweep.record.sweep_index import run_status
from vaesweep.run import run_job

TIMING_COLUMNS = {"seconds", "images_per_sec"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _run(tmp_path: Path, name: str, overrides: list[str]) -> dict:
    return run_job(bridge.compose(overrides), tmp_path / name)


@pytest.mark.slow
def test_record_follows_the_contract(tmp_path: Path, tiny: list[str]) -> None:
    summary = _run(tmp_path, "r", [*tiny, "beta=0.1"])
    run_dir = tmp_path / "r"
    assert summary["status"] == "completed"
    header = (run_dir / contract.METRICS_FILE).read_text().splitlines()[0].split(",")
    assert header[: len(contract.METRIC_COLUMNS)] == list(contract.METRIC_COLUMNS)
    assert header[-4:] == [f"kl_dim_{i}" for i in range(4)]
    assert {"mi", "marginal_kl", "grad_norm_recon", "grad_norm_kl"} <= set(header)
    on_disk = json.loads((run_dir / contract.SUMMARY_FILE).read_text())
    assert set(on_disk) <= set(contract.SUMMARY_KEYS)
    assert {"status", "final", "iwae", "config", "data", "wall_time_s", "versions"} <= set(on_disk)
    assert {"vaesweep", "torch", "python", "platform"} <= set(on_disk["versions"])
    clone = Path(__file__).resolve().parents[1]
    if (clone / ".git").exists():  # tests run from a clone: the run names its commit
        head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True)
        assert on_disk["versions"]["git_commit"] == head.stdout.decode().strip()
    val = on_disk["final"]["val"]
    # KL per dim sums to the KL; ELBO = -(nll + kl); beta_sum = beta for the sum reduction.
    assert sum(on_disk["kl_per_dim"]) == pytest.approx(val["kl"], rel=1e-6)
    assert val["elbo"] == pytest.approx(-(val["nll"] + val["kl"]), rel=1e-9)
    assert val["beta_sum"] == 0.1 and val["sigma2_eff"] == pytest.approx(0.05)
    assert val["beta_calib"] == pytest.approx(0.05 / val["mse"])
    assert on_disk["iwae"]["nll"] <= -val["elbo"] + 1.0  # IWAE tightens the bound
    # Every file was renamed into place: no temporary files are left behind.
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    state = tensorfile.loads((run_dir / contract.CHECKPOINT_FILE).read_bytes())
    assert state["state"]["epoch"] == 2 and "model" in state["state"]


@pytest.mark.slow
def test_same_seed_gives_identical_csvs(tmp_path: Path, tiny: list[str]) -> None:
    _run(tmp_path, "a", [*tiny, "seed=3"])
    _run(tmp_path, "b", [*tiny, "seed=3"])
    _run(tmp_path, "c", [*tiny, "seed=4"])

    def numbers(name: str) -> list[dict[str, str]]:
        return [
            {k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in _rows(tmp_path / name)
        ]

    assert numbers("a") == numbers("b")
    assert numbers("a") != numbers("c")


@pytest.mark.slow
def test_nan_run_ends_diverged(tmp_path: Path, tiny: list[str]) -> None:
    summary = _run(tmp_path, "nan", [*tiny, "train.lr=1e6"])
    assert summary["status"] == "diverged"
    assert summary["error_kind"] == "numeric" and "non-finite loss" in summary["error"]
    assert run_status(tmp_path / "nan")[0] == "diverged"


def test_bad_data_is_a_recorded_user_error(tmp_path: Path, tiny: list[str]) -> None:
    summary = _run(tmp_path, "bad", [*tiny, "data=folder", f"data.path={tmp_path}/nothing"])
    assert summary["status"] == "failed" and summary["error_kind"] == "user"
    assert "nothing" in summary["error"]


@pytest.mark.slow
def test_completed_run_is_not_redone(tmp_path: Path, tiny: list[str]) -> None:
    _run(tmp_path, "done", tiny)
    before = (tmp_path / "done" / contract.METRICS_FILE).stat().st_mtime_ns
    summary = _run(tmp_path, "done", tiny)
    assert summary["status"] == "completed"
    assert (tmp_path / "done" / contract.METRICS_FILE).stat().st_mtime_ns == before


@pytest.mark.slow
def test_checkpoint_of_another_experiment_is_refused(tmp_path: Path, tiny: list[str]) -> None:
    _run(tmp_path, "x", tiny)
    summary_path = tmp_path / "x" / contract.SUMMARY_FILE
    summary = json.loads(summary_path.read_text())
    summary["status"] = "running"
    summary_path.write_text(json.dumps(summary))
    again = _run(tmp_path, "x", [*tiny, "model.latent_dim=5"])
    assert again["status"] == "failed" and "different experiment" in again["error"]


@pytest.mark.slow
def test_mean_reduction_records_beta_times_pixels(tmp_path: Path, tiny: list[str]) -> None:
    summary = _run(tmp_path, "mean", [*tiny, "loss.recon_reduction=mean", "beta=0.5"])
    val = summary["final"]["val"]
    assert val["beta_sum"] == pytest.approx(0.5 * 64)
    assert val["sigma2_eff"] == pytest.approx(0.5 * 64 / 2)
    assert val["beta_norm"] == pytest.approx(0.5 * 64 * 4 / 64)


def test_digits_match_scikit_learn() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    from vaesweep.config import DataConfig
    from vaesweep.data.digits import load_digits

    ours, ref = load_digits(DataConfig()), sklearn_digits()
    expected = torch.from_numpy(ref.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    assert torch.equal(ours.train.images, expected)
    assert torch.equal(ours.train.labels, torch.from_numpy(ref.target).long())


@pytest.mark.slow
def test_beta_point_one_reconstructs_better_than_beta_one(tmp_path: Path) -> None:
    """The motivating experiment on the default data and config: beta=1 nearly collapses."""
    quick_eval = ["train.progress=off", "eval.iwae_samples=0"]
    low = _run(tmp_path, "low", ["beta=0.1", *quick_eval])["final"]["val"]
    high = _run(tmp_path, "high", ["beta=1", *quick_eval])["final"]["val"]
    assert low["mse"] < 0.5 * high["mse"]
    assert high["kl"] < 2.0 < low["kl"]  # beta=1 transmits almost nothing about the digit
    assert high["beta_calib"] > 3.0  # and it is far over-regularised relative to its MSE
