"""With ``loss.recon_reduction=mean`` the logged ``loss`` is recon / D + β_t·kl (recon stays the
summed SSE, nats or SSE per image), so the reading must not say the steps follow recon + β·KL or
that σ² = β/2 (a user audit); under the sum both stay as they were."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import Reading, build_reading
from vaesweep.testing.fabricate import SHAPE, fabricate_sweep

D = math.prod(SHAPE)


@pytest.fixture(scope="module")
def mean_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reduction") / "mean"
    fabricate_sweep(root, [1e-4, 1e-3, 1e-2], reduction="mean", images=False)
    return root


def test_the_record_itself_is_not_recon_plus_beta_kl(mean_sweep: Path) -> None:
    """The fabricated record is what the trainer writes: loss = recon / D + β·kl."""
    m = pd.read_csv(mean_sweep / "beta=0.001" / "metrics.csv")
    assert ((m["loss"] - (m["recon"] / D + m["beta_t"] * m["kl"])).abs() < 1e-9).all()
    assert ((m["loss"] - (m["recon"] + m["beta_t"] * m["kl"])).abs() > 0.1).all()


def _reading(root: Path) -> Reading:
    return build_reading(build_sweep(load([root])))


def test_mean_reduction_reading_does_not_claim_recon_plus_beta_kl(mean_sweep: Path) -> None:
    reading = _reading(mean_sweep)
    qs = dict(reading.questions)
    step = qs["What does β do to training, and how should it be read in terms of gradient descent?"]
    assert "follows ∇recon + β·∇KL." not in step
    assert (
        f"follows ∇recon/D + β·∇KL (loss.recon_reduction=mean, D = {D} pixels; recon is logged "
        "summed), the direction of ∇recon + β_sum·∇KL"
    ) in step
    sound = qs["Is scaling the KL term sound, or does it drop the KL?"]
    assert "σ² = β/2" not in sound and "choosing the decoder noise σ² = β_sum/2" in sound
    answer = " ".join(reading.answer)
    assert "the objective SSE/D + β·KL is β times the negative ELBO" in answer
    assert "SSE + β·KL is exactly" not in answer


def test_sum_reduction_reading_keeps_recon_plus_beta_kl(tmp_path: Path) -> None:
    root = tmp_path / "sum"
    fabricate_sweep(root, [0.01, 0.1], images=False)
    reading = _reading(root)
    assert "follows ∇recon + β·∇KL." in reading.text()
    assert "the objective SSE + β·KL is β times the negative ELBO" in " ".join(reading.answer)
