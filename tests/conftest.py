"""Shared fixtures: tiny, fast run settings and an isolated outputs/ folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Overrides that make a run take about a second on 2 cores (digits, 2 epochs, small nets).
TINY = [
    "train.epochs=2",
    "data.limit=400",
    "model.width=8",
    "model.hidden_dim=32",
    "model.latent_dim=4",
    "eval.iwae_samples=5",
    "eval.iwae_images=50",
    "eval.mi_images=100",
    "eval.grad_batches=1",
    "train.progress=off",
]


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs root; the working directory is the test's tmp dir."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "outputs"
    monkeypatch.setenv("VAESWEEP_OUTPUTS", str(root))
    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "cache"))
    return root


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
