"""Disentanglement metrics against representations whose answer is known.

The ground-truth factors as the code must score at the top of every metric, a random rotation of
them clearly lower, codes that ignore the factors at the bottom, and a duplicated factor must
lower MIG. Nothing here trains a model: the representation is a function of the factor classes.
"""

from __future__ import annotations

import numpy as np
import pytest

from vaesweep.data.factors import FactorGrid, values_of
from vaesweep.disentanglement import METRICS, MetricSettings, evaluate
from vaesweep.disentanglement.dci import completeness, disentanglement
from vaesweep.disentanglement.information import factor_entropy, histogram_discretize, mig
from vaesweep.disentanglement.sampling import CachedRepresentation

SIZES = (3, 4, 5, 6)
#: Small enough to run in seconds (published: 10,000 / 5,000 / 64 / 10,000).
SMALL = MetricSettings(num_train=600, num_test=300, batch_size=32, num_variance=600)


def grid(complete: bool = True) -> FactorGrid:
    render = (lambda classes: classes) if complete else None
    return FactorGrid(("a", "b", "c", "d"), SIZES, values_of(*(range(s) for s in SIZES)), render)


def truth(classes: np.ndarray) -> np.ndarray:
    return (classes - (np.array(SIZES) - 1) / 2) / np.array(SIZES)


#: A rotation that mixes every factor into every latent equally (a normalised Hadamard matrix).
ROTATION = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0


def rotated(classes: np.ndarray) -> np.ndarray:
    return truth(classes) @ ROTATION


def noise(classes: np.ndarray) -> np.ndarray:
    # Independent of the factors: fresh normal draws on every call.
    return np.random.default_rng(len(classes)).normal(size=(len(classes), 4))


def duplicated(classes: np.ndarray) -> np.ndarray:
    z = truth(classes)
    return np.c_[z, z[:, :1]]


@pytest.fixture(scope="module")
def scores() -> dict[str, dict]:
    reps = {"truth": truth, "rotated": rotated, "duplicated": duplicated}
    out = {name: evaluate(grid(), fn, SMALL) for name, fn in reps.items()}
    out["noise"] = evaluate(grid(), noise, SMALL, cache=False)
    return out


@pytest.mark.slow
def test_ground_truth_scores_at_the_top(scores: dict[str, dict]) -> None:
    s = scores["truth"]["scores"]
    assert s["beta_vae"] >= 0.99 and s["factor_vae"] >= 0.99
    assert s["mig"] > 0.9
    assert s["dci_disentanglement"] > 0.9 and s["dci_completeness"] > 0.9
    assert s["dci_informativeness"] > 0.95


@pytest.mark.slow
def test_a_rotation_scores_clearly_lower(scores: dict[str, dict]) -> None:
    top, rot = scores["truth"]["scores"], scores["rotated"]["scores"]
    assert rot["mig"] < top["mig"] - 0.4
    assert rot["dci_disentanglement"] < top["dci_disentanglement"] - 0.4
    assert rot["sap"] < top["sap"]
    assert rot["factor_vae"] < top["factor_vae"] - 0.05
    assert rot["beta_vae"] < top["beta_vae"] - 0.02
    # The rotation loses no information: only how it is spread over the latents changed.
    assert rot["dci_informativeness"] > 0.5


@pytest.mark.slow
def test_codes_that_ignore_the_factors_score_at_the_bottom(scores: dict[str, dict]) -> None:
    s = scores["noise"]["scores"]
    chance = 1 / len(SIZES)
    assert s["mig"] < 0.05 and s["sap"] < 0.05
    assert s["beta_vae"] < chance + 0.15 and s["factor_vae"] < chance + 0.2
    assert s["dci_disentanglement"] < 0.2 and s["dci_informativeness"] < 0.45


@pytest.mark.slow
def test_a_duplicated_factor_lowers_mig(scores: dict[str, dict]) -> None:
    top, dup = scores["truth"]["metrics"]["mig"], scores["duplicated"]["metrics"]["mig"]
    assert dup["per_factor"][0] < 0.1  # two latents now share factor a
    assert np.allclose(dup["per_factor"][1:], top["per_factor"][1:], atol=0.05)
    assert dup["score"] < top["score"] - 0.15


@pytest.mark.slow
def test_result_records_settings_and_per_factor_details(scores: dict[str, dict]) -> None:
    r = scores["truth"]
    assert r["factors"] == ["a", "b", "c", "d"] and r["settings"]["num_train"] == 600
    assert set(r["metrics"]) == set(METRICS) and not r["skipped"]
    mi = np.array(r["metrics"]["mig"]["mutual_information"])
    assert mi.shape == (4, 4) and (np.argmax(mi, axis=0) == np.arange(4)).all()
    importance = np.array(r["metrics"]["dci"]["importance"])
    assert importance.shape == (4, 4) and (np.argmax(importance, axis=0) == np.arange(4)).all()
    assert r["metrics"]["mig"]["top_latent"] == [0, 1, 2, 3]
    assert r["encoded_combinations"] <= 360  # each of the 360 combinations encoded once at most


def test_metrics_are_reproducible() -> None:
    a = evaluate(grid(), rotated, SMALL, metrics=["mig", "factor_vae"])
    b = evaluate(grid(), rotated, SMALL, metrics=["mig", "factor_vae"])
    assert a["scores"] == b["scores"] and a["metrics"]["mig"] == b["metrics"]["mig"]


def test_incomplete_grid_skips_the_scores_that_render_chosen_factors() -> None:
    source = FactorGrid(
        ("a", "b", "c", "d"), SIZES, grid().values, present=np.arange(0, 360, 2, dtype=np.int64)
    )
    r = evaluate(source, truth, SMALL, metrics=["beta_vae", "factor_vae", "mig"])
    assert set(r["skipped"]) == {"beta_vae", "factor_vae"} and r["scores"]["beta_vae"] is None
    assert r["scores"]["mig"] > 0.8


def test_collapsed_code_gets_factor_vae_zero() -> None:
    r = evaluate(grid(), lambda c: np.zeros((len(c), 3)), SMALL, metrics=["factor_vae"])
    assert r["metrics"]["factor_vae"]["score"] == 0.0
    assert r["metrics"]["factor_vae"]["active_latents"] == 0


def test_cached_representation_encodes_each_combination_once() -> None:
    calls: list[int] = []

    def counting(classes: np.ndarray) -> np.ndarray:
        calls.append(len(classes))
        return truth(classes)

    cached = CachedRepresentation(grid(), counting)
    classes = grid().all_classes()
    first = cached(classes[[0, 5, 5, 7]])
    again = cached(classes[[5, 7, 9]])
    assert calls == [3, 1] and cached.encoded == 4
    assert np.allclose(first, truth(classes[[0, 5, 5, 7]]))
    assert np.allclose(again, truth(classes[[5, 7, 9]]))


def test_mig_and_entropy_by_hand() -> None:
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)
    assert np.allclose(factor_entropy(factors), np.log(2))
    perfect = mig(factors.astype(float), factors, bins=20)
    assert perfect["score"] == pytest.approx(1.0)
    swapped = mig(factors[:, ::-1].astype(float), factors, bins=20)
    assert swapped["top_latent"] == [1, 0] and swapped["score"] == pytest.approx(1.0)
    # A constant factor carries no information and is left out rather than divided by zero.
    with_constant = np.c_[factors, np.zeros(100, int)]
    assert mig(factors.astype(float), with_constant, bins=20)["score"] == pytest.approx(1.0)


def test_histogram_discretize_gives_each_of_20_values_its_bin() -> None:
    codes = np.tile(np.arange(20.0), 3)[:, None]
    assert (histogram_discretize(codes, 20)[:, 0] == np.tile(np.arange(1, 21), 3)).all()


def test_dci_scores_of_known_importance_matrices() -> None:
    assert disentanglement(np.eye(4))[0] == pytest.approx(1.0, abs=1e-6)
    assert completeness(np.eye(4))[0] == pytest.approx(1.0, abs=1e-6)
    assert disentanglement(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-6)
    assert completeness(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-6)
    # One latent carrying two factors: disentanglement 0.5 in base 4 (entropy log 2 / log 4).
    two = np.array([[1.0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0], [0, 0, 0, 0]])
    assert disentanglement(two)[0] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0, abs=1e-6)


def test_summary_entry_names_the_latent_carrying_each_factor() -> None:
    from vaesweep.evaluation.disentanglement import summary_entry

    r = evaluate(grid(), lambda c: np.c_[truth(c)[:, :3], np.zeros(len(c))], SMALL, ["mig"])
    entry = summary_entry(r)
    # Factor d (index 3) is in no latent: no latent is said to carry it.
    assert entry["top_latent"] == [0, 1, 2, None]
    assert entry["factors"] == ["a", "b", "c", "d"] and entry["mig"] == r["scores"]["mig"]


def test_score_names_and_presets_agree_with_the_contract_and_config() -> None:
    from vaesweep.config.eval import DISENTANGLEMENT_PRESETS
    from vaesweep.disentanglement import HEADLINE, PRESETS
    from vaesweep.disentanglement.settings import resolve
    from vaesweep.record import contract

    assert tuple(HEADLINE) == contract.DISENTANGLEMENT_SCORES
    assert set(PRESETS) < set(DISENTANGLEMENT_PRESETS)
    assert resolve("auto", 737_280)[0] == "published"  # dSprites
    assert resolve("auto", 1_296)[0] == "quick"  # shapes
    assert resolve("off", 10) is None
