"""A report with one setting names it by its β and says it compares nothing (exploratory test:
three seeds at β=0.1 were labelled "seed=0" everywhere and read as a β comparison)."""

from __future__ import annotations

from pathlib import Path

from vaesweep.report.build import build_report
from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import build_reading
from vaesweep.report.render.tables import settings_table
from vaesweep.testing.fabricate import fabricate_run


def _seeds(root: Path, converged: bool = False) -> Path:
    """Three seeds of one setting in a folder, as `sweep seed=0,1,2 beta=0.1` leaves them."""
    for seed in range(3):
        fabricate_run(root / f"seed={seed}", beta=0.1, seed=seed, images=False, converged=converged)
    return root


def test_seeds_of_one_setting_are_labelled_by_beta_not_by_the_first_seed(tmp_path: Path) -> None:
    sweep = build_sweep(load([_seeds(tmp_path / "seeds")]))
    assert set(sweep.table["label"]) == {"β=0.1"}
    assert list(settings_table(sweep)["setting"]) == ["β=0.1"]
    text = build_reading(sweep).text()
    assert "seed=0" not in text
    assert "covering one setting (β=0.1)" in text


def test_one_setting_says_so_and_does_not_compare_betas(tmp_path: Path) -> None:
    reading = build_reading(build_sweep(load([_seeds(tmp_path / "seeds")])))
    text = reading.text()
    assert reading.answer[0].startswith("This report has one setting, β=0.1 (3 seeds)")
    assert "sweep over β" in reading.answer[0]
    for comparison in ("β does not matter", "Differences between them", "not β"):
        assert comparison not in text
    assert reading.answer[1].startswith("These runs stopped while still improving")
    (pick,) = [a for q, a in reading.questions if q == "What should I pick?"]
    assert pick.startswith("With one setting (β=0.1) there is nothing to pick between")


def test_a_single_run_dir_is_named_by_its_beta(tmp_path: Path) -> None:
    run = tmp_path / "2026-01-01_120000_beta=0.5"
    fabricate_run(run, beta=0.5, images=False, converged=True)
    out = build_report([run], fmt="md", out=tmp_path / "r")
    text = out.read_text()
    assert "covering one setting (β=0.5)" in text
    assert "This report has one setting, β=0.5 (one run)" in text
    assert "| β=0.5 | 1/1 |" in text
