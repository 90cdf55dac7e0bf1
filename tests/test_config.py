"""Every config group composes into typed, validated dataclasses; bad input is one clear line."""

from __future__ import annotations

import pytest

from vaesweep import config as schemas
from vaesweep.bridge import compose as bridge
from vaesweep.bridge.overrides import normalize_overrides
from vaesweep.errors import UserError


def group_options(group: str) -> list[str]:
    """The options Hydra offers for ``group`` (what ``group=<option>`` accepts)."""
    from hydra.core.global_hydra import GlobalHydra

    with bridge.hydra_session():
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


GROUP_SCHEMAS = {
    "model": {"conv": schemas.ConvConfig, "mlp": schemas.MLPConfig},
    "kl": {
        "constant": schemas.ConstantKL,
        "warmup": schemas.WarmupKL,
        "cyclical": schemas.CyclicalKL,
        "capacity": schemas.CapacityKL,
        "free_bits": schemas.FreeBitsKL,
        "geco": schemas.GecoKL,
        "pi": schemas.PIKL,
    },
}


def test_defaults_compose_to_typed_config() -> None:
    cfg = bridge.compose([])
    assert isinstance(cfg, schemas.Config)
    assert cfg.beta == 1.0 and isinstance(cfg.beta, float)
    assert cfg.data.name == "digits"
    assert isinstance(cfg.model, schemas.ConvConfig)
    assert isinstance(cfg.kl, schemas.ConstantKL)
    assert cfg.loss.likelihood == "mse" and cfg.loss.recon_reduction == "sum"


@pytest.mark.parametrize("group", ["data", "model", "loss", "kl", "train", "eval"])
def test_every_option_of_every_group_composes(group: str) -> None:
    options = group_options(group)
    assert options, group
    for option in options:
        extra = ["data.path=/some/folder"] if (group, option) == ("data", "folder") else []
        cfg = bridge.compose([f"{group}={option}", *extra])
        node = getattr(cfg, group)
        if group in GROUP_SCHEMAS:
            assert isinstance(node, GROUP_SCHEMAS[group][option]), option
        if group == "data":
            assert node.name == option


def test_schema_options_are_not_offered_as_choices() -> None:
    assert group_options("model") == ["conv", "mlp"]


def test_int_beta_becomes_float_and_keys_nest() -> None:
    cfg = bridge.compose(
        ["beta=1", "model.latent_dim=32", "train.epochs=3", "kl=warmup", "kl.epochs=2.5"]
    )
    assert cfg.beta == 1.0 and isinstance(cfg.beta, float)
    assert cfg.model.latent_dim == 32 and cfg.train.epochs == 3
    assert cfg.kl.epochs == 2.5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("bta=0.1", "Key 'bta' not in config. Did you mean 'beta'?"),
        ("train.epoch=3", "Did you mean 'train.epochs'?"),
        ("model.latnt_dim=3", "Did you mean 'model.latent_dim'?"),
        ("beta=-1", "beta=-1.0 is invalid: must be >= 0"),
        ("beta=abc", "could not be converted to Float"),
        ("model.latent_dim=0", "model.latent_dim=0 is invalid: must be > 0"),
        ("train.lr=0", "train.lr=0.0 is invalid: must be > 0"),
        ("model=transformer", "no model named 'transformer'; available: conv, mlp"),
        ("data=imagenet", "no data named 'imagenet'"),
        ("data=folder", "data=folder needs the image folder"),
        ("loss.likelihood=poisson", "expected one of mse, gaussian"),
        ("loss.recon_reduction=max", "expected one of sum, mean"),
        ("data.val_fraction=1.5", "must lie in (0, 1)"),
        ("beta=0.1,1", "use `vaesweep sweep beta=0.1,1`"),
    ],
)
def test_bad_overrides_give_one_clear_line(override: str, expected: str) -> None:
    with pytest.raises(UserError) as info:
        bridge.compose([override])
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_config_hash_tells_configs_apart() -> None:
    a, b = bridge.compose([]), bridge.compose(["beta=0.5"])
    assert a.hash() == bridge.compose([]).hash()
    assert a.hash() != b.hash()


def test_config_yaml_round_trips_through_the_schema() -> None:
    import yaml

    cfg = bridge.compose(["beta=0.25", "model=mlp"])
    data = yaml.safe_load(cfg.to_yaml())
    assert data["beta"] == 0.25 and data["model"]["hidden"] == [512, 256]


def test_home_paths_are_quoted_for_hydra() -> None:
    assert normalize_overrides(["data.path=~/paintings", "beta=0.1", "~seed"]) == [
        "data.path='~/paintings'",
        "beta=0.1",
        "~seed",
    ]
    cfg = bridge.compose(normalize_overrides(["data=folder", "data.path=~/paintings"]))
    assert cfg.data.path == "~/paintings"


def test_unparseable_override_says_how_to_quote() -> None:
    with pytest.raises(UserError, match="quote values with special characters"):
        bridge.compose(["data.path=/a (b)/c"])
