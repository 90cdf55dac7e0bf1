"""Training length in steps or epochs, and the convergence verdict (issue 15 parts 1-2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vaesweep.bridge import compose as bridge
from vaesweep.config import TrainConfig
from vaesweep.config.train import DEFAULT_STEPS
from vaesweep.errors import UserError
from vaesweep.evaluation.convergence import TOLERANCE, convergence, from_rows


def test_default_length_is_in_steps_and_fits_the_data() -> None:
    cfg = TrainConfig()
    assert cfg.epochs is None
    # digits: 1,797 images, 180 held out -> 26 steps of 64 -> the old default of 50 epochs.
    assert cfg.total_steps(1617) == 1300 and cfg.total_epochs(1617) == 50
    # a 900-image folder (810 training images, 13 steps): 100 epochs, the same steps.
    assert cfg.total_steps(810) == 1300 and cfg.total_epochs(810) == 100


def test_the_default_length_fits_the_dataset() -> None:
    """train.steps=null: 1,300 steps, except on a dataset whose published protocol fixes the
    length (dSprites: Locatello et al. 2019); a length the user gives always wins."""
    assert bridge.compose([]).train.steps == DEFAULT_STEPS == 1300
    assert bridge.compose(["data=shapes"]).train.steps == 1300
    assert bridge.compose(["data=dsprites"]).train.steps == 300_000
    assert bridge.compose(["data=dsprites", "train.steps=50"]).train.steps == 50
    assert bridge.compose(["data=dsprites", "train.epochs=2"]).train.total_steps(6400) == 200
    assert bridge.compose(["train.steps=null"]).train.steps == 1300
    # The published length is said before training (a day of CPU), a given one is not.
    assert any("300,000 steps" in w for w in bridge.compose(["data=dsprites"]).warnings())
    assert not bridge.compose(["data=dsprites", "train.epochs=3"]).warnings()
    # `vaesweep show` prints the length the run will use, not null.
    assert "steps: 300000" in bridge.show(["data=dsprites"], with_hydra=False)


def test_epochs_when_set_win_over_steps() -> None:
    cfg = TrainConfig(epochs=3, steps=10)
    assert cfg.total_steps(810) == 39 and cfg.total_epochs(810) == 3
    assert TrainConfig(steps=20).total_epochs(810) == 2  # the second epoch stops after 7 steps
    with pytest.raises(UserError, match=r"train\.steps"):
        TrainConfig(steps=0)
    assert bridge.compose(["train.steps=500"]).train.steps == 500


def test_still_falling_is_not_converged() -> None:
    # 3% per epoch over the last 10% of 20 epochs (2 epochs of 10 steps).
    points = [(10 * e, 100.0 * 0.97**e) for e in range(1, 21)]
    out = convergence(points, 200)
    assert out["converged"] is False and (out["from_step"], out["to_step"]) == (180, 200)
    assert out["rel_change"] == pytest.approx(1 - 0.97**2)  # a share of the window's start


def test_the_fall_is_a_share_of_the_start_not_of_the_end() -> None:
    """A tester's run fell from 4.563 to 3.419 over the window: 25.1%, which the record gave
    as 33.5% (divided by the end value)."""
    out = convergence([(70, 4.563), (78, 3.419)], 78)
    assert out["rel_change"] == pytest.approx(0.2507, abs=1e-4)
    assert out["relative_to"] == "start"


def test_flat_or_rising_is_converged() -> None:
    flat = [(s, 50.0 + 1e-4 * (s % 3)) for s in range(10, 110, 10)]
    assert convergence(flat, 100)["converged"] is True
    rising = [(s, 50.0 + s) for s in range(10, 110, 10)]
    out = convergence(rising, 100)
    assert out["converged"] is True and out["rel_change"] < 0


def test_a_diverged_run_is_never_called_converged() -> None:
    """Its objective blew up at the end, which the rule alone would read as "not improving"."""
    rows = [
        {"split": "val", "step": s, "loss": 50.0 if s < 100 else 1e9} for s in (10, 50, 90, 100)
    ]
    assert from_rows(rows, 100)["converged"] is True
    out = from_rows(rows, 100, finished=False)
    assert out["converged"] is None and out["rel_change"] < 0 and out["to_step"] == 100


def test_the_boundary_is_the_documented_tolerance() -> None:
    below = convergence([(90, 100.0), (100, 100.0 * (1 - 0.99 * TOLERANCE))], 100)
    above = convergence([(90, 100.0), (100, 100.0 * (1 - 1.01 * TOLERANCE))], 100)
    assert below["converged"] is True and above["converged"] is False


def test_unknown_without_a_row_before_the_window() -> None:
    assert convergence([(13, 5.0)], 13)["converged"] is None
    assert convergence([], 13)["converged"] is None
    rows = [{"split": "train", "step": 5, "loss": 1.0}, {"split": "val", "step": 13, "loss": 2.0}]
    assert from_rows(rows, 13)["converged"] is None


@pytest.mark.slow
def test_a_run_stops_at_its_step_budget_and_records_both_lengths(
    tmp_path: Path, tiny: list[str]
) -> None:
    from vaesweep.run import run_job

    overrides = [o for o in tiny if not o.startswith("train.epochs")] + ["train.steps=8"]
    summary = run_job(bridge.compose(overrides), tmp_path / "r")
    assert summary["status"] == "completed"
    on_disk = json.loads((tmp_path / "r" / "summary.json").read_text())
    # data.limit=400 -> 360 training images -> 6 steps per epoch: 8 steps = 2 epochs, the
    # second one stopped after 2 steps.
    assert (on_disk["steps"], on_disk["epochs"], on_disk["steps_per_epoch"]) == (8, 2, 6)
    assert (on_disk["step"], on_disk["epochs_done"]) == (8, 2)
    with open(tmp_path / "r" / "metrics.csv", newline="") as f:
        val = [r for r in csv.DictReader(f) if r["split"] == "val"]
    assert [int(r["step"]) for r in val] == [6, 8]
    verdict = on_disk["convergence"]
    assert verdict["to_step"] == 8 and verdict["from_step"] == 6
    assert isinstance(verdict["converged"], bool)
