"""A resumed run reproduces an uninterrupted one: KL schedule, controller state and metrics.

For each KL method whose state evolves (cyclical schedule, PI controller, GECO multiplier) a
4-epoch run is compared with the same run interrupted and continued in its directory:

* killed mid-epoch 3 (also for capacity annealing and warm-up) (KeyboardInterrupt from the
  step hook, which leaves ``summary.json`` ``running`` like a real kill), then started again:
  it continues from the epoch-2 checkpoint (from epoch 1's where the checkpoint interval
  skipped epoch 2) and must give the same ``metrics.csv`` (timing columns aside), summary metrics,
  IWAE estimate and final weights, bitwise (CPU, deterministic kernels);
* finished with ``train.epochs=2``, marked ``running`` and started with ``train.epochs=4``
  (extending a run). This reproduces the uninterrupted run only for methods whose schedule
  does not depend on the run length (PI, GECO); the cyclical schedule is laid out over
  ``train.epochs``, so extending re-stretches it (checked explicitly below).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from vaesweep import tensorfile
from vaesweep.config import (
    PIKL,
    CapacityKL,
    Config,
    ConvConfig,
    CyclicalKL,
    DataConfig,
    EvalConfig,
    GecoKL,
    TrainConfig,
    WarmupKL,
)
from vaesweep.record import contract
from vaesweep.record.files import read_json, write_json
from vaesweep.run import run_job
from vaesweep.run.record_hooks import RecordHooks

#: Every test here compares real runs (trained in the module's fixture).
pytestmark = pytest.mark.slow

TIMING_COLUMNS = {"seconds", "images_per_sec"}
STEPS_PER_EPOCH = 6  # 360 training images (400 minus 10 % validation), batches of 64

KL_METHODS: dict[str, Any] = {
    # ratio 1 and 3 cycles over 24 steps: beta_t 0.75, 0.5, 0.25 at the ends of epochs 1-3.
    "cyclical": CyclicalKL(cycles=3, ratio=1.0),
    "pi": PIKL(target=1.5, kp=0.01, ki=0.005, beta_min=0.0, beta_max=1.0),
    "geco": GecoKL(kappa=0.15, alpha=0.9, nu=0.05),
    # Also: capacity (state kept outside the checkpoint) and warm-up.
    "capacity": CapacityKL(gamma=5.0, c_max=2.0, ramp_epochs=3.0),
    "warmup": WarmupKL(epochs=3.0),
}
FEEDBACK_OR_CYCLIC = ("cyclical", "pi", "geco")


def _config(method: str, epochs: int, checkpoint_every_s: float = 0.0) -> Config:
    """``checkpoint_every_s=0``: a checkpoint after every epoch."""
    return Config(
        data=DataConfig(limit=400),
        model=ConvConfig(width=8, hidden_dim=32, latent_dim=4),
        kl=KL_METHODS[method],
        train=TrainConfig(
            epochs=epochs,
            batch_size=64,
            progress="off",
            device="cpu",
            checkpoint_every_s=checkpoint_every_s,
        ),
        eval=EvalConfig(
            iwae_samples=5, iwae_images=50, mi_images=100, grad_batches=1, n_recon=4, n_samples=8
        ),
        beta=0.5,
        seed=1,
    )


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)
        ]


def _beta_t(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(r["epoch"], r["split"], r["beta_t"]) for r in rows]


def _final(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        split: {k: v for k, v in row.items() if k not in TIMING_COLUMNS}
        for split, row in summary["final"].items()
    }


def _assert_same_run(resumed: Path, reference: Path) -> None:
    rows, ref_rows = _rows(resumed), _rows(reference)
    assert _beta_t(rows) == _beta_t(ref_rows)
    assert rows == ref_rows  # every metric, as the exact decimal repr written to the CSV
    a, b = read_json(resumed / contract.SUMMARY_FILE), read_json(reference / contract.SUMMARY_FILE)
    assert a["status"] == b["status"] == "completed"
    assert _final(a) == _final(b)
    assert a["iwae"] == b["iwae"] and a["kl_per_dim"] == b["kl_per_dim"]
    assert (a["epochs_done"], a["step"]) == (b["epochs_done"], b["step"]) == (4, 24)
    ca = tensorfile.loads((resumed / contract.CHECKPOINT_FILE).read_bytes())["state"]
    cb = tensorfile.loads((reference / contract.CHECKPOINT_FILE).read_bytes())["state"]
    assert ca["control"] == cb["control"]
    assert torch.equal(ca["generator"], cb["generator"])
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference: each method trained 4 epochs in one go."""
    root = tmp_path_factory.mktemp("uninterrupted")
    out = {}
    for method in KL_METHODS:
        summary = run_job(_config(method, 4), root / method)
        assert summary["status"] == "completed", summary.get("error")
        out[method] = root / method
    return out


def test_schedules_actually_move(uninterrupted: dict[str, Path]) -> None:
    """Guard against a vacuous comparison: each method's beta_t changes over the run."""
    for method in FEEDBACK_OR_CYCLIC:
        run_dir = uninterrupted[method]
        betas = [float(b) for _, split, b in _beta_t(_rows(run_dir)) if split == "train"]
        assert len(set(betas)) == 4, (method, betas)
    cyc = [float(b) for _, s, b in _beta_t(_rows(uninterrupted["cyclical"])) if s == "train"]
    assert cyc == pytest.approx([0.5 * 0.75, 0.5 * 0.5, 0.5 * 0.25, 0.5], rel=1e-12)


def _kill_in_epoch_3(method: str, run_dir: Path, every_s: float, patch: pytest.MonkeyPatch) -> None:
    kill_at = 2 * STEPS_PER_EPOCH + 3  # three steps into epoch 3
    original = RecordHooks.on_step

    def on_step(self: RecordHooks, step: int, loss: float) -> None:
        original(self, step, loss)
        if step == kill_at:
            raise KeyboardInterrupt

    with patch.context() as m:
        m.setattr(RecordHooks, "on_step", on_step)
        with pytest.raises(KeyboardInterrupt):
            run_job(_config(method, 4, every_s), run_dir)
    killed = read_json(run_dir / contract.SUMMARY_FILE)
    assert killed["status"] == "running" and killed["epochs_done"] == 2
    assert {r["epoch"] for r in _rows(run_dir)} == {"1", "2"}


@pytest.mark.parametrize("method", list(KL_METHODS))
def test_killed_mid_epoch_and_restarted_matches_uninterrupted(
    method: str,
    uninterrupted: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = tmp_path / method
    _kill_in_epoch_3(method, run_dir, 0.0, monkeypatch)
    summary = run_job(_config(method, 4), run_dir)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["resumed"] == [2]
    _assert_same_run(run_dir, uninterrupted[method])


def test_interrupted_between_checkpoints_saves_its_last_finished_epoch(
    uninterrupted: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default interval (train.checkpoint_every_s) a short run checkpoints after its
    first and last epochs only; interrupted in epoch 3 (Ctrl-C, SIGTERM), it saves epoch 2,
    kept in memory, so resuming loses only the epoch in flight."""
    run_dir = tmp_path / "geco"
    _kill_in_epoch_3("geco", run_dir, 3600.0, monkeypatch)
    saved = tensorfile.loads((run_dir / contract.CHECKPOINT_FILE).read_bytes())["state"]
    assert saved["epoch"] == 2
    summary = run_job(_config("geco", 4, 3600.0), run_dir)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["resumed"] == [2]
    _assert_same_run(run_dir, uninterrupted["geco"])


def test_hard_kill_between_checkpoints_resumes_from_the_periodic_one(
    uninterrupted: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hard kill (SIGKILL, a node lost) cannot save anything: the run resumes after epoch
    1, drops the row of epoch 2 that its checkpoint has not seen, and still ends as the
    uninterrupted run."""
    run_dir = tmp_path / "geco"
    with monkeypatch.context() as patch:
        patch.setattr(RecordHooks, "save_last_epoch", lambda self: None)
        _kill_in_epoch_3("geco", run_dir, 3600.0, patch)
    saved = tensorfile.loads((run_dir / contract.CHECKPOINT_FILE).read_bytes())["state"]
    assert saved["epoch"] == 1
    summary = run_job(_config("geco", 4, 3600.0), run_dir)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["resumed"] == [1]
    _assert_same_run(run_dir, uninterrupted["geco"])


@pytest.mark.parametrize("method", ["pi", "geco"])
def test_extended_from_two_to_four_epochs_matches_uninterrupted(
    method: str, uninterrupted: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / method
    first = run_job(_config(method, 2), run_dir)
    assert first["status"] == "completed", first.get("error")
    # A completed run is never redone; mark it unfinished so the next call continues it.
    summary = read_json(run_dir / contract.SUMMARY_FILE)
    write_json(run_dir / contract.SUMMARY_FILE, {**summary, "status": "running"})
    second = run_job(_config(method, 4), run_dir)
    assert second["status"] == "completed", second.get("error")
    assert second["epochs"] == 4 and second["resumed"] == [2]
    assert second["config"]["train"]["epochs"] == 4
    _assert_same_run(run_dir, uninterrupted[method])


def test_extending_a_cyclical_run_restretches_its_schedule(
    uninterrupted: dict[str, Path], tmp_path: Path
) -> None:
    """The cycles are laid out over train.epochs: 2 epochs of a 2-epoch run are not the first
    2 epochs of a 4-epoch run. Extending continues with the 4-epoch layout from step 12."""
    run_dir = tmp_path / "cyclical"
    run_job(_config("cyclical", 2), run_dir)
    summary = read_json(run_dir / contract.SUMMARY_FILE)
    write_json(run_dir / contract.SUMMARY_FILE, {**summary, "status": "running"})
    run_job(_config("cyclical", 4), run_dir)
    got = [float(b) for _, s, b in _beta_t(_rows(run_dir)) if s == "train"]
    ref = [float(b) for _, s, b in _beta_t(_rows(uninterrupted["cyclical"])) if s == "train"]
    # 12 steps in 3 cycles of 4: beta_t(6) = 0.5 * (6 % 4) / 4, then the run is re-laid out.
    assert got[:2] == pytest.approx([0.5 * 0.5, 0.5], rel=1e-12)
    assert got[2:] == pytest.approx(ref[2:], rel=1e-12)
    assert got[:2] != pytest.approx(ref[:2])
