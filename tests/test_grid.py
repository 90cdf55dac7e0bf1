"""Sweep grids are expanded by Hydra's own override grammar, as its BasicSweeper would."""

from __future__ import annotations

import pytest

from vaesweep.bridge import grid as bridge
from vaesweep.errors import UserError
from vaesweep.record.run_names import run_name


def test_comma_list_expands_in_order() -> None:
    grid = bridge.expand_grid(["beta=0.01,0.1,1"])
    assert grid.axes == {"beta": ["0.01", "0.1", "1"]}
    assert grid.jobs == [["beta=0.01"], ["beta=0.1"], ["beta=1"]]
    assert grid.names() == ["beta=0.01", "beta=0.1", "beta=1"]


def test_product_varies_last_key_fastest_and_keeps_fixed_keys() -> None:
    grid = bridge.expand_grid(["beta=0.1,1", "train.epochs=3", "seed=0,1"])
    assert grid.swept_keys == ["beta", "seed"]
    assert grid.fixed == ["train.epochs=3"]
    assert grid.rows() == [
        {"beta": "0.1", "seed": "0"},
        {"beta": "0.1", "seed": "1"},
        {"beta": "1", "seed": "0"},
        {"beta": "1", "seed": "1"},
    ]
    assert all("train.epochs=3" in job for job in grid.jobs)
    assert grid.names()[1] == "beta=0.1,seed=1"


def test_range_choice_and_glob() -> None:
    assert bridge.expand_grid(["seed=range(3)"]).axes == {"seed": ["0", "1", "2"]}
    assert bridge.expand_grid(["beta=range(0,1,0.25)"]).axes["beta"] == [
        "0.0",
        "0.25",
        "0.5",
        "0.75",
    ]
    assert bridge.expand_grid(["beta=choice(0.5,2)"]).axes == {"beta": ["0.5", "2"]}
    assert bridge.expand_grid(["model=glob(*)"]).axes == {"model": ["conv", "mlp", "resconv"]}
    kl = bridge.expand_grid(["kl=glob(*,exclude=[geco,pi])"]).axes["kl"]
    assert kl == ["capacity", "constant", "cyclical", "free_bits", "warmup"]


def test_repeated_key_keeps_position_and_last_value() -> None:
    grid = bridge.expand_grid(["beta=0.1,1", "seed=0,1", "beta=5"])
    assert grid.axes == {"seed": ["0", "1"]}
    assert grid.jobs == [["beta=5", "seed=0"], ["beta=5", "seed=1"]]


def test_matches_hydra_basic_sweeper() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = ["beta=0.01,0.1", "model=mlp", "seed=range(2)", "kl=constant,warmup"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    expected = BasicSweeper.split_arguments(parsed, None)[0]
    assert bridge.expand_grid(overrides).jobs == expected


def test_named_sweep_in_config() -> None:
    grid = bridge.expand_grid(["+experiment=beta_grid", "train.epochs=2"])
    assert grid.axes == {"beta": ["0.001", "0.01", "0.1", "1", "10"], "seed": ["0", "1", "2"]}
    assert len(grid.jobs) == 15


def test_photos_reduction_is_the_motivating_case_at_a_shorter_length() -> None:
    """The named sweep of the README's "Your own images": photos, both reductions, two betas."""
    grid = bridge.expand_grid(["+experiment=photos_reduction"])
    assert grid.axes == {"loss.recon_reduction": ["sum", "mean"], "beta": ["0.01", "1"]}
    configs = bridge.validate_jobs(grid)
    assert {c.data.name for c in configs} == {"photos"}
    assert {(c.loss.recon_reduction, c.beta) for c in configs} == {
        ("sum", 0.01),
        ("sum", 1.0),
        ("mean", 0.01),
        ("mean", 1.0),
    }
    assert all(c.train.steps == 390 and c.train.epochs is None for c in configs)


def test_continuous_sweep_and_hydra_sweep_are_refused() -> None:
    with pytest.raises(UserError, match="continuous range"):
        bridge.expand_grid(["beta=interval(0,1)"])
    with pytest.raises(UserError, match="cannot be swept"):
        bridge.expand_grid(["hydra.job.name=a,b"])


def test_one_invalid_run_fails_the_whole_sweep_up_front() -> None:
    grid = bridge.expand_grid(["beta=0.1,-1", "seed=0"])
    with pytest.raises(UserError, match=r"^run beta=-1: beta=-1.0 is invalid"):
        bridge.validate_jobs(grid)


def test_run_names_are_stable_and_safe() -> None:
    assert run_name(["seed=0", "beta=0.1", "train.epochs=2"], ["beta", "seed"]) == (
        "beta=0.1,seed=0"
    )
    assert run_name(["train.epochs=2"], []) == "train.epochs=2"
    assert run_name([], []) == "default"
    assert "/" not in run_name(["data.path=/a/b"], ["data.path"])
    long = run_name([f"data.path={'x' * 400}"], ["data.path"])
    assert len(long) <= 150
