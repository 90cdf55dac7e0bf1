"""Issue 11's reading corrections, on fabricated records written by the real writers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import Reading, build_reading
from vaesweep.report.render.tables import settings_table
from vaesweep.testing.fabricate import EIGENVALUES, N_VAL, fabricate_run, fabricate_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepRecords:
    root = tmp_path_factory.mktemp("science") / "grid"
    fabricate_sweep(root, [0.01, 0.1, 1.0, 8.0], [0], images=False)
    return build_sweep(load([root]))


@pytest.fixture(scope="module")
def reading(sweep: SweepRecords) -> Reading:
    return build_reading(sweep)


def test_four_questions_answered_directly(reading: Reading) -> None:
    qs = [q for q, _ in reading.questions]
    assert len(qs) == 4
    assert "sound" in qs[0] and "gradient descent" in qs[1]
    assert "smooth, well-structured latent space" in qs[2] and qs[3] == "What should I pick?"
    answers = dict(reading.questions)
    a2 = answers[qs[1]]
    assert "balance for every β" in a2 and "dD/dR = −β_sum" in a2
    assert "Adam is nearly invariant" in a2
    a3 = answers[qs[2]]
    assert "nats per image" in a3 and "prior samples" in a3


def test_count_capped_at_m_and_uncapped_count_both_printed(
    sweep: SweepRecords, reading: Reading
) -> None:
    g = sweep.groups.set_index("label")
    sigma2 = 0.01 / 2  # beta = 0.01, mse, summed: sigma^2 = beta / 2
    above = sum(1 for v in EIGENVALUES if v > sigma2)  # own count, all eigenvalues
    assert above > 8
    assert g.loc["β=0.01", "lin_components_above_mean"] == above
    assert g.loc["β=0.01", "lin_active_units_mean"] == 8
    text = reading.text()
    assert f"{above} components clear that bar, of which a linear VAE with M = 8 can keep 8" in (
        text
    )
    assert "the code is limited by M, not by β" in text


def test_mi_saturation_flagged_in_table_and_text(sweep: SweepRecords, reading: Reading) -> None:
    t = sweep.table.set_index("label") if "label" in sweep.table else sweep.table
    row = t.loc["β=0.01"]
    assert math.isclose(row["mi_ceiling"], math.log(N_VAL))  # eval.mi_images=None: the split
    assert row["mi_saturated"] == 1.0
    cells = settings_table(sweep).set_index("setting")
    assert "saturated: log N" in cells.loc["β=0.01", "I(x;z)"]
    assert "saturated" not in cells.loc["β=8", "I(x;z)"]
    # rate - I(x;z) with I(x;z) capped at log N: the marginal KL shown is an upper bound.
    marginal = [c for c in cells.columns if "marginal" in c.lower()]
    assert marginal and "(upper bound: I(x;z) saturated)" in cells.loc["β=0.01", marginal[0]]
    text = reading.text()
    assert "sits at its ceiling log N" in text and "upper bound on the prior mismatch" in text
    # The smallest-marginal-KL pick leaves saturated settings out.
    pick = dict(reading.questions)["What should I pick?"]
    assert "(smallest marginal KL among the runs whose I(x;z) estimate is below" in pick


def test_mse_iwae_at_half_is_not_a_pick(reading: Reading) -> None:
    pick = dict(reading.questions)["What should I pick?"]
    assert "for the IWAE bound of the trained decoder" not in pick
    assert "ranks nothing" in reading.text()


def test_unsettled_controller_is_called_not_converged(tmp_path: Path) -> None:
    root = tmp_path / "methods"
    fabricate_run(root / "constant", beta=0.1, method="constant", epochs=10, images=False)
    fabricate_run(root / "geco", beta=0.1, method="geco", epochs=10, images=False)
    sweep = build_sweep(load([root]))
    t = sweep.table.set_index("method")
    # Own reference: the fabricated GECO beta_t = beta 10^(-3 e / E); window = last 20%.
    expected = 10 ** (-3 * 10 / 10) / 10 ** (-3 * 8 / 10) - 1
    assert math.isclose(t.loc["geco", "beta_t_change"], expected, rel_tol=1e-9)
    assert t.loc["geco", "unsettled"] == "β_t" and t.loc["constant", "unsettled"] == ""
    section = dict(build_reading(sweep).sections)["Controller and decoder-noise convergence"]
    assert len(section) == 1 and "not converged" in section[0] and "geco" in section[0]


def test_mixed_likelihoods_compared_like_with_like(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    fabricate_run(root / "a", beta=0.1, likelihood="mse", images=False)
    fabricate_run(root / "b", beta=1.0, likelihood="mse", images=False)
    fabricate_run(root / "c", beta=1.0, likelihood="gaussian", images=False)
    text = build_reading(build_sweep(load([root]))).text()
    assert "This sweep mixes likelihoods (gaussian, mse)" in text
    assert "among loss.likelihood=mse runs" in text and "among loss.likelihood=gaussian" in text
    assert "ELBOs mean the same thing" not in text


def test_calibrated_beta_does_not_mix_likelihoods(tmp_path: Path) -> None:
    from vaesweep.report.reading.answer import calibrated_beta
    from vaesweep.report.reading.phrases import Groups

    root = tmp_path / "calib"
    for b in (0.01, 0.1, 1.0):
        fabricate_run(root / f"mse{b}", beta=b, likelihood="mse", images=False)
    fabricate_run(root / "g", beta=8.0, likelihood="gaussian", images=False)
    G = Groups(build_sweep(load([root])))
    text = calibrated_beta(G) or ""
    assert "β=8" not in text


def test_readme_no_longer_claims_one_scale() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "ELBOs mean the same thing" not in readme
    for name in ("likelihood_base.py", "likelihoods.py", "gaussian_likelihoods.py"):
        src = Path(__file__).parents[1] / "vaesweep" / "objective" / name
        assert "ELBOs mean the same thing" not in src.read_text(encoding="utf-8")
