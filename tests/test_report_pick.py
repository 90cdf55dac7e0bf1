""" "What should I pick?" never recommends a collapsed code for samples, and says at the pick
itself when the setting it names lost seeds (a user audit: β=8, with no dimension above 0.1 nats,
was the prior-sample pick; a β with a diverged seed was picked on its surviving seed's mean)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.numbers import fmt
from vaesweep.report.reading.build import build_reading
from vaesweep.testing.fabricate import fabricate_sweep

PICK = "What should I pick?"


def _sweep(root: Path, betas: list[float], statuses: dict[str, str]) -> SweepRecords:
    fabricate_sweep(root, betas, [0, 1, 2], images=False, statuses=statuses)
    return build_sweep(load([root]))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepRecords:
    """β=8 collapses (every dimension at 0.002 nats); β=0.3 and β=0.5 keep information with
    I(x;z) below its ceiling; β=0.01 is the best reconstruction, with one seed diverged."""
    return _sweep(
        tmp_path_factory.mktemp("pick") / "s",
        [0.01, 0.3, 0.5, 8.0],
        {"beta=0.01,seed=1": "diverged", "beta=0.3,seed=2": "failed"},
    )


def _mean(sweep: SweepRecords, label: str, col: str) -> float:
    return float(sweep.groups.set_index("label").loc[label, f"{col}_mean"])


def test_a_collapsed_setting_is_not_the_prior_sample_pick(sweep: SweepRecords) -> None:
    assert _mean(sweep, "β=8", "informative_dims") == 0
    # It has the smallest marginal KL of all: what the pick used to rank by.
    marginal = sweep.groups.set_index("label")["marginal_kl_mean"]
    assert marginal.idxmin() == "β=8"
    pick = dict(build_reading(sweep).questions)[PICK]
    samples = pick[pick.index("for prior samples") :]
    assert "log N ceiling), β=0.5 (" in samples
    assert f"not β=8, whose code has collapsed (rate {fmt(_mean(sweep, 'β=8', 'kl'))} nats" in (
        samples
    )


def test_a_pick_that_lost_a_seed_says_so_at_the_pick(sweep: SweepRecords) -> None:
    pick = dict(build_reading(sweep).questions)[PICK]
    recon = pick[pick.index("for reconstructions") : pick.index("for the likelihood")]
    assert recon.startswith("for reconstructions, β=0.01 (MSE")
    assert "caution: 1 of its 3 seeds diverged, so these numbers are the mean of the other 2" in (
        recon
    )
    # A setting that lost no seed is named without a caution.
    samples = pick[pick.index("for prior samples") :]
    assert "β=0.5 (" in samples and "caution" not in samples.split("not β=8")[0]


def test_no_sample_pick_when_every_informative_setting_saturates(tmp_path: Path) -> None:
    """β=0.01 and 0.1 carry more than log N nats (marginal KL only bounded), β=1 and 8 carry
    under a nat: no setting is named for samples, and the text says why."""
    sweep = _sweep(tmp_path / "s", [0.01, 0.1, 1.0, 8.0], {})
    pick = dict(build_reading(sweep).questions)[PICK]
    samples = pick[pick.index("for prior samples") :]
    assert "log N ceiling), no setting here: β=1 and β=8, whose codes have collapsed" in samples
    assert "only an upper bound that ranks nothing" in samples


def test_the_methods_comparison_names_lost_seeds(tmp_path: Path) -> None:
    root = tmp_path / "m"
    fabricate_sweep(
        root,
        [0.1],
        [0, 1],
        methods=["constant", "warmup"],
        statuses={"kl=warmup,beta=0.1,seed=1": "diverged"},
        images=False,
    )
    section = dict(build_reading(build_sweep(load([root]))).sections)["KL-control methods"]
    picks = section[-1]
    assert picks.startswith("On these runs, ")
    # The fabricated warm-up ends with the best ELBO (-44.4 against -44.5 nats).
    assert "best ELBO: warmup (" in picks
    assert "1 of its 2 seeds diverged: the mean of the rest)" in picks
    assert re.search(r"lowest squared error: constant \([^;()]*\);", picks)  # lost none


def test_lost_seeds_counts_each_way_a_seed_was_lost(tmp_path: Path) -> None:
    from vaesweep.report.reading.phrases import Groups
    from vaesweep.report.reading.pick import lost_seeds

    statuses = {"beta=0.1,seed=1": "diverged", "beta=0.1,seed=2": "failed"}
    statuses |= {"beta=1,seed=0": "pending", "beta=1,seed=1": "pending"}
    G = Groups(_sweep(tmp_path / "s", [0.01, 0.1, 1.0], statuses))
    assert lost_seeds(G, "β=0.01") == ""
    assert lost_seeds(G, "β=0.1") == "2 of its 3 seeds have no final values (1 diverged, 1 failed)"
    assert lost_seeds(G, "β=1") == "2 of its 3 seeds have not started"


def test_a_pick_on_unfinished_seeds_says_they_are_provisional(tmp_path: Path) -> None:
    """A seed still training counts at its latest epoch: the pick says so where it names it."""
    statuses = {"beta=0.01,seed=0": "running"}
    pick = dict(build_reading(_sweep(tmp_path / "s", [0.01, 1.0], statuses)).questions)[PICK]
    recon = pick[pick.index("for reconstructions") : pick.index("for the likelihood")]
    assert "β=0.01 (" in recon
    assert "provisional: 1 of its 3 seeds has not finished, compared at its latest epoch" in recon
