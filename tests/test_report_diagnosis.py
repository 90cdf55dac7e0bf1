"""The reading tells apart training length, the reduction, β and the latent size (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading import diagnosis, settling
from vaesweep.report.reading.build import build_reading
from vaesweep.report.render.tables import runs_table, settings_table
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep


def _sweep(root: Path, **kwargs: object) -> SweepRecords:
    fabricate_sweep(root, [0.01, 1.0], images=False, **kwargs)  # type: ignore[arg-type]
    return build_sweep(load([root]))


def test_unconverged_runs_lead_the_reading_and_set_the_headline(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path / "s", converged=False)
    reading = build_reading(sweep)
    # The ends already differ by 5 dB: the headline says so, and that the runs were still
    # improving, rather than "β does not matter yet", which the numbers contradict.
    assert reading.title.startswith(
        "The reconstructions at β=0.01 are better than at β=1 so far (PSNR 17.9 against 12.8 dB)"
    )
    assert "stopped while still improving; train longer" in reading.title
    assert "does not matter" not in reading.text()
    assert reading.answer[0].startswith("These runs stopped while still improving")
    assert "fell by 3.0% over the last 10% of the 130 steps" in reading.answer[0]
    # The fabricated runs set train.epochs=5, which wins over train.steps: 4x the epochs.
    assert "train.epochs=20" in reading.answer[0]
    runs = runs_table(sweep)
    assert list(runs["converged"]) == ["no", "no"]
    assert list(runs["val fall, last 10%"]) == ["3.0%", "3.0%"]
    assert list(settings_table(sweep)["converged"]) == ["no", "no"]


def test_the_headline_names_which_end_was_still_improving(tmp_path: Path) -> None:
    """Only one end still improving: "these runs stopped while still improving" said it of
    both. When it is the better end the gap can only be larger; when it is the worse end the
    gap may shrink, and the headline says which run."""
    root = tmp_path / "one"
    fabricate_run(root / "beta=0.01", beta=0.01, images=False, converged=False)
    fabricate_run(root / "beta=1", beta=1.0, images=False, converged=True)
    title = build_reading(build_sweep(load([root]))).title
    assert title.startswith("The reconstructions at β=0.01 are better than at β=1 (PSNR")
    assert title.endswith(
        "at β=0.01 the run was still improving when it stopped: the gap is if anything larger"
    )
    assert "these runs" not in title
    root = tmp_path / "other"
    fabricate_run(root / "beta=0.01", beta=0.01, images=False, converged=True)
    fabricate_run(root / "beta=1", beta=1.0, images=False, converged=False)
    title = build_reading(build_sweep(load([root]))).title
    assert "so far" in title and "but the run at β=1 stopped while still improving" in title


def test_converged_runs_get_a_headline_from_the_numbers(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path / "s", converged=True)
    reading = build_reading(sweep)
    assert reading.title == "Why the reconstructions at β=1 are worse than at β=0.01"
    assert not reading.answer[0].startswith("β does not matter")
    (length,) = [s for t, s in reading.sections if t == "Training length"]
    assert length[0].startswith("All 2 settings converged")
    assert list(runs_table(sweep)["converged"]) == ["yes", "yes"]


def test_unconverged_runs_with_no_clear_gap_do_not_matter_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = _sweep(tmp_path / "s", converged=False)
    monkeypatch.setattr(settling, "CLEAR_GAP", 10.0)  # every gap is now "small"
    reading = build_reading(sweep)
    assert reading.title.startswith("β does not matter yet")
    assert reading.answer[0].startswith("β does not matter yet: these runs stopped while still")
    assert "partly training length, not β" in reading.answer[0]


def test_a_rise_counts_as_converged_and_is_not_called_a_change_below_one_percent(
    tmp_path: Path,
) -> None:
    # As measured on data=photos: sum runs whose validation objective rose 2.7% over the last
    # 10% are converged by the rule, but "changed by less than 1%" would misquote them.
    root = tmp_path / "rise"
    fabricate_run(root / "beta=0.01", beta=0.01, images=False, converged=True, rel_change=0.005)
    fabricate_run(root / "beta=1", beta=1.0, images=False, converged=True, rel_change=-0.027)
    reading = build_reading(build_sweep(load([root])))
    (length,) = [s for t, s in reading.sections if t == "Training length"]
    assert length[0].startswith(
        "All 2 settings converged: their validation objective fell by less than 1% over the last "
        "10% of training (largest fall 0.5%) or rose (by 2.7% at β=1: the noise"
    )
    assert "changed by less than 1%" not in reading.text()


def test_a_small_gap_is_no_clear_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = _sweep(tmp_path / "s", converged=True)
    monkeypatch.setattr(settling, "CLEAR_GAP", 10.0)  # every gap is now "small"
    title = build_reading(sweep).title
    assert title.startswith("β made no clear difference to the reconstructions")


def test_records_without_a_verdict_read_as_before(tmp_path: Path) -> None:
    reading = build_reading(_sweep(tmp_path / "s"))
    assert not any(t in ("Training length",) for t, _ in reading.sections)
    assert not reading.answer[0].startswith(("β does not", "Not every"))


def test_all_latents_in_use_at_every_beta_names_the_latent_size(tmp_path: Path) -> None:
    sweep = build_sweep(load([_root_latent(tmp_path)]))
    text = build_reading(sweep).text()
    assert "The latent size, not β, limits the code here: all 2 latent dimensions" in text


def _root_latent(tmp_path: Path) -> Path:
    root = tmp_path / "latent"
    fabricate_sweep(root, [0.001, 0.01], images=False, latent_dim=2, converged=True)
    return root


def test_the_reduction_is_named_with_its_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "red"
    for reduction in ("sum", "mean"):
        for beta in (0.01, 1.0):
            name = f"loss.recon_reduction={reduction},beta={beta:g}"
            fabricate_run(root / name, beta=beta, reduction=reduction, images=False, converged=True)
    sweep = build_sweep(load([root]))
    reading = build_reading(sweep)
    # The headline names the reduction too (at β=1 both reductions end near the mean image,
    # so the pair it explains is β=0.01's), then what β did under the sum.
    assert reading.title == (
        "The reduction, not β, explains the lost detail: with loss.recon_reduction=mean at "
        "β=0.01 (β_sum = 0.64) the PSNR is 13.5 dB against 17.9 dB with the sum; under the sum, "
        "the reconstructions at β=1 are worse than at β=0.01"
    )
    # The mean runs lose 4+ dB against the sum at the same β: the reduction leads, with numbers.
    assert reading.answer[0].startswith("The reduction, not β, explains the ")
    assert "D = 64 pixels, an effective β_sum = 0.64" in reading.answer[0]
    # β itself is then compared under the canonical sum, whichever set comes first.
    assert any("runs with loss.recon_reduction=sum" in s for s in reading.answer)
    (explained,) = [s for t, s in reading.sections if t == "What explains the differences"]
    assert any(
        "at β=1 the squared error is averaged over the D = 64 pixels" in s for s in explained
    )
    assert any(s.startswith("β itself (sum over pixels") for s in explained)
    monkeypatch.setattr(diagnosis, "REDUCTION_GAP_DB", 100.0)
    reading = build_reading(sweep)
    assert not reading.answer[0].startswith("The reduction")
    assert "The reduction makes little difference here" in reading.text()


def test_the_settings_beta_column_says_when_it_holds_a_final_beta_t(tmp_path: Path) -> None:
    """A PI or GECO setting's β column held its final β_t (0.0264) under the header 'β', read
    as the configured β (0.1)."""
    fabricate_sweep(tmp_path / "m", [0.1], methods=["constant", "geco"], images=False)
    columns = list(settings_table(build_sweep(load([tmp_path / "m"]))).columns)
    assert "β (final β_t for scheduled/controlled runs)" in columns and "β" not in columns
    fabricate_sweep(tmp_path / "c", [0.1, 1.0], images=False)
    assert "β" in list(settings_table(build_sweep(load([tmp_path / "c"]))).columns)


def test_a_run_far_worse_than_the_mean_image_is_flagged_first(tmp_path: Path) -> None:
    """A plain autoencoder (β=0) with too large a learning rate ended at 2.6 times the mean
    image's error, marked completed and converged; nothing at the top of the page said so."""
    sweep = _sweep(tmp_path / "s", converged=True)
    t = sweep.table
    assert "β=0.01" in set(t["label"])
    reading = build_reading(sweep)
    assert not any("did not learn" in s for s in reading.answer)
    worse = t["label"] == "β=0.01"
    t.loc[worse, "sse"] = 2.6 * t.loc[worse, "total_variance"]
    sweep.groups.loc[sweep.groups["label"] == "β=0.01", "sse_mean"] = float(
        t.loc[worse, "sse"].iloc[0]
    )
    answer = build_reading(sweep).answer
    assert answer[0].startswith("One setting did not learn to reconstruct")
    assert "(2.6 times it at β=0.01)" in answer[0] and "train.lr" in answer[0]
