"""Composing one run's config with Hydra and turning it into typed dataclasses.

* :func:`compose` turns override strings into a validated :class:`~vaesweep.config.Config`
  (one composition; the schema's ``__post_init__`` checks run in :func:`to_config`);
* :func:`show` composes once and returns the YAML ``vaesweep show`` prints;
* :func:`hydra_session` opens Hydra on the packaged ``conf/`` (plus ``--config-dir`` folders)
  and maps Hydra/OmegaConf errors about user input to one-line :class:`~vaesweep.errors.UserError`.

hydra-core is pinned below 1.4; the private hooks this bridge relies on live in
:mod:`vaesweep.bridge.hydra_internals` and are pinned by tests/test_bridge_hooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vaesweep import config as schemas
from vaesweep.bridge.overrides import run_overrides
from vaesweep.config.messages import describe
from vaesweep.errors import UserError
from vaesweep.record.run_names import run_name

CONFIG_NAME = "config"


def _register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="base_config", node=schemas.Config)
    for group, options in schemas.OPTION_SCHEMAS.items():
        for option, node in options.items():
            store.store(group=f"schema/{group}", name=option, node=node)


_register_schemas()


def _run_name_resolver(keys: str, _root_: DictConfig) -> str:
    swept = [k for k in keys.split("+") if k] if keys != "-" else []
    return run_name(list(_root_.hydra.overrides.task), swept)


OmegaConf.register_new_resolver("vaesweep.run_name", _run_name_resolver, replace=True)


def config_dir() -> Path:
    """The packaged conf/ directory (the repository's conf/ in an editable install)."""
    return Path(str(resources.files("vaesweep.conf"))).resolve()


def searchpath_override(extra_dirs: Sequence[Path]) -> list[str]:
    if not extra_dirs:
        return []
    paths = ",".join(f"file://{Path(d).expanduser().resolve()}" for d in extra_dirs)
    return [f"hydra.searchpath=[{paths}]"]


@contextmanager
def hydra_session(extra_dirs: Sequence[Path] = ()) -> Iterator[None]:
    """Hydra initialised on conf/ for the duration; user-input errors become UserErrors."""
    for d in extra_dirs:
        if not Path(d).expanduser().is_dir():
            raise UserError(f"config dir {d} does not exist; pass an existing folder of YAML files")
    with (
        translate_errors(),
        initialize_config_dir(
            config_dir=str(config_dir()), version_base="1.3", job_name="vaesweep"
        ),
    ):
        yield


def compose_dict(
    overrides: Sequence[str], extra_dirs: Sequence[Path] = (), *, with_hydra: bool = False
) -> DictConfig:
    """Compose the config for one run; sweep syntax is an error here.

    Without ``with_hydra``, settings of Hydra itself (``hydra.launcher.partition=gpu``) are
    left out: they belong to the launch, and the launcher they refer to is chosen by
    ``--launcher`` only when launching.
    """
    with hydra_session(extra_dirs):
        _reject_sweeps(overrides)
        kept = list(overrides) if with_hydra else run_overrides(overrides)
        return hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[*kept, *searchpath_override(extra_dirs)],
            return_hydra_config=with_hydra,
        )


def compose(overrides: Sequence[str] = (), extra_dirs: Sequence[Path] = ()) -> schemas.Config:
    """Compose and validate one run's config into typed dataclasses."""
    cfg = compose_dict(overrides, extra_dirs)
    with translate_errors():
        return to_config(cfg)


def show(overrides: Sequence[str], extra_dirs: Sequence[Path] = (), *, with_hydra: bool) -> str:
    """The composed, validated config as YAML (with Hydra's own settings if asked)."""
    cfg = compose_dict(overrides, extra_dirs, with_hydra=with_hydra)
    with translate_errors():
        to_config(cfg)  # range checks
    return OmegaConf.to_yaml(cfg, resolve=not with_hydra)


def to_config(cfg: DictConfig) -> schemas.Config:
    """DictConfig -> Config; runs every schema's ``__post_init__`` range checks."""
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    config = OmegaConf.to_object(plain)
    assert isinstance(config, schemas.Config)
    return config


def _reject_sweeps(overrides: Sequence[str]) -> None:
    for o in parser().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            raise UserError(
                f"'{o.input_line}' lists several values; one run takes one value "
                f"(use `vaesweep sweep {o.input_line}` to run them all)"
            )


def parser() -> OverridesParser:
    loader = (
        GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    )
    return OverridesParser.create(config_loader=loader)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn Hydra/OmegaConf exceptions about user input into one-line UserErrors."""
    try:
        yield
    except UserError:
        raise
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise UserError(describe(err)) from None
