"""``train.precision``: autocast of the training forward pass, loss scaling in fp16, fp32 terms."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from vaesweep import tensorfile
from vaesweep.bridge import compose as bridge
from vaesweep.config.train import PRECISIONS, TrainConfig
from vaesweep.errors import UserError
from vaesweep.record import contract
from vaesweep.run import run_job
from vaesweep.training.adam import make_adam
from vaesweep.training.precision import DTYPES, Precision


def test_names_are_the_schemas() -> None:
    assert tuple(DTYPES) == PRECISIONS


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(UserError, match=r"train\.precision.*fp32"):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_autocast_runs_layers_in_the_low_dtype(name: str) -> None:
    layer = torch.nn.Linear(4, 3)
    precision = Precision(name, torch.device("cpu"))
    with precision.autocast():
        out = layer(torch.randn(2, 4))
    assert out.dtype == DTYPES[name]
    assert (precision.scaler is not None) == (name == "fp16")


def test_fp32_is_untouched() -> None:
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    precision = Precision("fp32", torch.device("cpu"))
    with precision.autocast():
        out = layer(x)
    assert out.dtype == torch.float32 and torch.equal(out, layer(x))
    assert precision.state_dict() == {}


def test_fp16_skips_a_step_whose_gradients_overflow() -> None:
    layer = torch.nn.Linear(3, 1)
    before = [p.detach().clone() for p in layer.parameters()]
    optimizer = make_adam(layer, lr=0.1, weight_decay=0.0)  # the trainer's optimiser
    precision = Precision("fp16", torch.device("cpu"))
    scale = precision.scaler.get_scale()
    precision.backward(layer(torch.full((1, 3), float("inf"))).sum())
    precision.step(optimizer)
    after = [p.detach() for p in layer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(after, before)), "the step must be skipped"
    assert precision.scaler.get_scale() < scale, "and the scale must back off"
    restored = Precision("fp16", torch.device("cpu"))
    restored.load_state_dict(precision.state_dict())
    assert restored.scaler.get_scale() == precision.scaler.get_scale()


def _val(run_dir: Path) -> dict[str, float]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    return {k: float(rows[-1][k]) for k in ("loss", "recon", "kl")}


@pytest.mark.slow
def test_low_precision_runs_train_to_the_fp32_numbers(tmp_path: Path, tiny: list[str]) -> None:
    finals = {}
    for name in PRECISIONS:
        run_dir = tmp_path / name
        overrides = [*tiny, "train.epochs=1", "data.limit=200", f"train.precision={name}"]
        summary = run_job(bridge.compose(overrides), run_dir)
        assert summary["status"] == "completed", summary.get("error")
        finals[name] = _val(run_dir)
        state = tensorfile.loads((run_dir / contract.CHECKPOINT_FILE).read_bytes())["state"]
        assert ("amp" in state) == (name == "fp16"), "only fp16 keeps a loss-scaler state"
    for name in ("bf16", "fp16"):
        for key, value in finals[name].items():
            # Same seed, same batches: only the rounding of the forward pass differs.
            assert value == pytest.approx(finals["fp32"][key], rel=0.05, abs=0.05), (name, key)
