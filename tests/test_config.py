"""Every config group composes into typed, validated dataclasses; bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaesweep import config as schemas
from vaesweep.bridge import compose as bridge
from vaesweep.bridge.overrides import normalize_overrides
from vaesweep.errors import UserError

GROUP_SCHEMAS = {
    "model": {
        "conv": schemas.ConvConfig,
        "mlp": schemas.MLPConfig,
        "resconv": schemas.ResConvConfig,
    },
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


def _options_on_disk(group: str) -> list[str]:
    return sorted(
        p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / group).glob("*.yaml")
    )


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
    options = _options_on_disk(group)
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
    with pytest.raises(UserError, match=r"no model named 'x'; available: conv, mlp, resconv$"):
        bridge.compose(["model=x"])


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


def test_paths_with_accents_are_quoted_for_hydra(tmp_path: Path) -> None:
    """Hydra's grammar takes only ASCII letters unquoted: a run or sweep folder under
    /home/josé (or a --name café) broke every launch."""
    from vaesweep.bridge.launch import prepare_job
    from vaesweep.bridge.overrides import quote

    assert quote("/home/josé/outputs") == "'/home/josé/outputs'"
    assert quote("/home/jose/outputs") == "/home/jose/outputs"
    job = prepare_job(["beta=0.1"], run_dir=tmp_path / "josé" / "runs" / "1_café")
    assert job.composed.hydra.sweep.dir == str(tmp_path / "josé" / "runs" / "1_café")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+data.limt=50", "Key 'data.limt' not in config. Did you mean 'data.limit'?"),
        ("+trian.epochs=1", "Key 'trian' not in config. Did you mean 'train'?"),
        ("+zzz=1", "Key 'zzz' not in config."),
    ],
)
def test_a_key_added_with_plus_must_be_in_the_schema(override: str, message: str) -> None:
    """'+' lets Hydra add a key; the typed config dropped it silently (a typo trained as if
    it was not there)."""
    with pytest.raises(UserError) as err:
        bridge.compose([override])
    assert str(err.value) == message
    # '+' that adds a config group (no key of its own) is still fine.
    assert isinstance(bridge.compose(["+experiment=beta_grid"]), schemas.Config)


def test_unparseable_override_says_how_to_quote() -> None:
    with pytest.raises(UserError, match="quote values with special characters"):
        bridge.compose(["data.path=/a (b)/c"])


def _schemas() -> list[tuple[str, type]]:
    """(group, schema) for every schema the root config can hold, the root itself included."""
    import dataclasses

    out: list[tuple[str, type]] = [("", schemas.Config)]
    for f in dataclasses.fields(schemas.Config):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            out.append((f.name, type(default)))
    out += [("model", s) for s in schemas.MODEL_SCHEMAS.values()]
    out += [("kl", s) for s in schemas.KL_SCHEMAS.values()]
    return out


def _float_fields(schema: type) -> list[str]:
    import dataclasses
    import typing

    hints = typing.get_type_hints(schema)
    return [
        f.name
        for f in dataclasses.fields(schema)
        if hints[f.name] is float or hints[f.name] == (float | None)
    ]


@pytest.mark.parametrize(("group", "schema"), _schemas(), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_every_float_field_of_every_schema_refuses_non_finite(
    group: str, schema: type, bad: float
) -> None:
    fields = _float_fields(schema)
    for name in fields:
        key = f"{group}.{name}" if group else name
        with pytest.raises(UserError, match=rf"^{key}={bad} is invalid: must be a finite number"):
            schema(**{name: bad})


def test_the_float_fields_are_found() -> None:
    assert "lr" in _float_fields(schemas.TrainConfig)
    assert "lambda_init" in _float_fields(schemas.GecoKL)
    assert "beta" in _float_fields(schemas.Config)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["beta=inf"], "beta=inf is invalid: must be a finite number, e.g. beta=1.0"),
        (["train.lr=inf"], "train.lr=inf is invalid: must be a finite number, e.g. train.lr=0.001"),
        (["train.lr=nan"], "train.lr=nan is invalid: must be a finite number"),
        (["kl=geco", "kl.lambda_max=inf"], "kl.lambda_max=inf is invalid: must be a finite"),
        (["train.grad_clip=-inf"], "train.grad_clip=-inf is invalid: must be a finite number"),
        (
            ["train.device=cuda:abc"],
            "train.device='cuda:abc' is invalid: expected auto, cpu, cuda, cuda:N",
        ),
        (["train.device=gpu"], "train.device='gpu' is invalid"),
        (["train.device=cuda:"], "train.device='cuda:' is invalid"),
        (["train.device=auto:0"], "train.device='auto:0' is invalid"),
    ],
)
def test_values_that_cannot_train_are_refused_in_one_line(
    overrides: list[str], expected: str
) -> None:
    with pytest.raises(UserError) as info:
        bridge.compose(overrides)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names_torch_takes_are_accepted(device: str) -> None:
    assert bridge.compose([f"train.device={device}"]).train.device == device


def test_cli_refuses_infinite_beta_with_exit_code_2() -> None:
    from typer.testing import CliRunner

    from vaesweep.cli import app

    result = CliRunner().invoke(app, ["show", "beta=inf"])
    assert result.exit_code == 2, result.output
    assert "beta=inf is invalid: must be a finite number" in result.output
    assert "Traceback" not in result.output


def test_density_likelihood_on_binarised_data_is_warned_about() -> None:
    from vaesweep.config import Config, DataConfig, LossConfig

    assert (
        Config(data=DataConfig(binarize="dynamic"), loss=LossConfig("bernoulli")).warnings() == []
    )
    assert Config(loss=LossConfig("cbernoulli")).warnings() == []
    (line,) = Config(data=DataConfig(binarize="static"), loss=LossConfig("cbernoulli")).warnings()
    assert "cbernoulli" in line and "binarize=static" in line and "bernoulli" in line


def test_bernoulli_on_grey_levels_is_warned_about() -> None:
    """The README calls bernoulli a likelihood for binary pixels; on grey digits it used to run
    without a word, and its bits/dim then compared with nothing."""
    from vaesweep.config import Config, DataConfig, LossConfig

    (line,) = Config(loss=LossConfig("bernoulli")).warnings()
    assert line.startswith("loss.likelihood=bernoulli on data=digits's grey levels")
    assert "data.binarize=dynamic" in line and "cbernoulli" in line
    for binary in (DataConfig(name="dsprites"), DataConfig(name="shapes")):
        assert Config(data=binary, loss=LossConfig("bernoulli")).warnings() == [] or all(
            "grey levels" not in w
            for w in Config(data=binary, loss=LossConfig("bernoulli")).warnings()
        )


def test_geco_refuses_likelihoods_it_would_ignore() -> None:
    # GECO's objective is KL + lambda * (MSE / kappa^2 - 1): no other reconstruction term.
    assert bridge.compose(["kl=geco", "loss.likelihood=gaussian"]).loss.likelihood == "gaussian"
    with pytest.raises(UserError) as err:
        bridge.compose(["kl=geco", "loss.likelihood=bernoulli"])
    line = str(err.value)
    assert "loss.likelihood='bernoulli'" in line and "kl=geco" in line and "mse" in line


def test_a_seed_no_generator_takes_is_one_line() -> None:
    """seed=99999999999999999999999 passed validation and the run failed in torch."""
    with pytest.raises(UserError, match=r"seed=.* must be below 2\*\*63"):
        bridge.compose(["seed=99999999999999999999999"])
    assert bridge.compose([f"seed={2**63 - 1}"]).seed == 2**63 - 1
