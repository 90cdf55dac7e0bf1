"""Each option name is listed once, in the config schema; the core's tables map exactly those names."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaesweep.config import DataConfig
from vaesweep.config.data import DATASETS
from vaesweep.config.kl import KL_SCHEMAS
from vaesweep.config.loss import LIKELIHOODS
from vaesweep.config.model import MODEL_SCHEMAS
from vaesweep.control import CONTROLLERS
from vaesweep.data.registry import LOADERS, TEST_SPLITS, get_loader, no_test_split
from vaesweep.errors import UserError
from vaesweep.objective.likelihoods import LIKELIHOOD_FACTORIES

CONF = Path(__file__).resolve().parents[1] / "conf"


def _options(group: str) -> set[str]:
    """Selectable options of a config group on disk (``base_*`` files are shared bases)."""
    return {p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("base_")}


@pytest.mark.parametrize(
    ("names", "implementations"),
    [(DATASETS, LOADERS), (LIKELIHOODS, LIKELIHOOD_FACTORIES), (tuple(KL_SCHEMAS), CONTROLLERS)],
    ids=["data", "loss.likelihood", "kl"],
)
def test_core_tables_implement_exactly_the_schema_names(
    names: tuple[str, ...], implementations: dict[str, object]
) -> None:
    assert list(implementations) == list(names)


@pytest.mark.parametrize(
    ("group", "names"),
    [("data", set(DATASETS)), ("kl", set(KL_SCHEMAS)), ("model", set(MODEL_SCHEMAS))],
)
def test_every_registered_name_has_its_yaml_and_no_more(group: str, names: set[str]) -> None:
    assert _options(group) == names


def test_unknown_dataset_lists_the_registry() -> None:
    with pytest.raises(UserError, match=f"available: {', '.join(DATASETS)}"):
        get_loader("imagenet")


@pytest.mark.parametrize("name", ["digits", "shapes", "dsprites"])
def test_a_dataset_without_a_test_split_is_told_which_have_one(name: str) -> None:
    """`vaesweep eval --split test` of a shapes run said only "digits and folder datasets have
    none". The message names the datasets whose loaders give a test split, and those of the
    bundled and generated datasets give none."""
    assert set(TEST_SPLITS) <= set(LOADERS)
    assert get_loader(name)(DataConfig(name=name, limit=50)).test is None
    assert name not in TEST_SPLITS
    assert no_test_split(name) == (
        f"{name} comes with none; mnist, fashion_mnist, cifar10 and celeba do"
    )


def test_celeba_without_its_partition_file_is_told_what_is_missing() -> None:
    assert no_test_split("celeba") == (
        "its test split comes from list_eval_partition.txt next to the images, which was not found"
    )
