"""A factor-dataset sweep trains as one stack, and each member ends with the disentanglement
metrics, files and summary keys of its single run: the same model (to float rounding) scored
with the same seeds, so the same numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.record import contract

pytestmark = pytest.mark.slow

SHAPES = ["data=shapes", "loss.likelihood=bernoulli", "eval.disentanglement=quick"]


def _sweep(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    assert "not stacked" not in result.output


def _same(a: Any, b: Any, where: str) -> None:
    """Equal structure and values, numbers to float rounding (the seconds taken aside)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), where
        for key in b:
            if key != "seconds":
                _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9, nan_ok=True), where
    else:
        assert a == b, where


def test_factor_dataset_members_score_as_their_single_runs(outputs: Path, tiny: list[str]) -> None:
    _sweep(["beta=0.1,8", *SHAPES, *tiny, "--name", "stacked"])
    _sweep(["beta=8", *SHAPES, *tiny, "--no-stack", "--name", "alone"])
    member = outputs / "sweeps" / "stacked" / "beta=8"
    (single,) = (outputs / "sweeps" / "alone").glob("beta=*")
    mine = json.loads((member / contract.SUMMARY_FILE).read_text())
    ref = json.loads((single / contract.SUMMARY_FILE).read_text())
    assert mine["stack"] == ["beta=0.1", "beta=8"]  # it did train stacked
    assert set(mine) ^ set(ref) == {"stack"}
    assert mine["timings"].keys() - ref["timings"].keys() == {"stack_size"}

    assert set(contract.DISENTANGLEMENT_SCORES) <= set(mine["disentanglement"])
    _same(mine["disentanglement"], ref["disentanglement"], "summary")
    a = json.loads((member / contract.DISENTANGLEMENT_FILE).read_text())
    b = json.loads((single / contract.DISENTANGLEMENT_FILE).read_text())
    _same(a, b, "disentanglement.json")
    # The other member has its own metrics (its own model, not a copy of member 1's).
    other = json.loads((member.parent / "beta=0.1" / contract.DISENTANGLEMENT_FILE).read_text())
    assert (
        other["metrics"]["mig"]["mutual_information"] != a["metrics"]["mig"]["mutual_information"]
    )
