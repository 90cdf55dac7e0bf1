"""Composing one run's config with Hydra and turning it into typed dataclasses.

* :func:`compose` turns override strings into a validated :class:`~vaesweep.config.Config`
  (one composition; the schema's ``__post_init__`` checks run in :func:`to_config`);
* :func:`show` composes once and returns the YAML ``vaesweep show`` prints;
* :func:`compose_launch` composes one job's launch (Hydra's own settings included) and
  validates its run config: the composition :mod:`vaesweep.bridge.launch` hands to Hydra's
  multirun, so a single run's config is checked and launched from one composition;
* :func:`hydra_session` opens Hydra on the packaged ``conf/`` (plus ``--config-dir`` folders)
  and maps Hydra/OmegaConf errors about user input to one-line :class:`~vaesweep.errors.UserError`.

hydra-core is pinned below 1.4; the private hooks this bridge relies on live in
:mod:`vaesweep.bridge.hydra_internals` and are pinned by tests/test_bridge_hooks.py.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
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
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from vaesweep import config as schemas
from vaesweep.bridge.config_files import check_config_dirs
from vaesweep.bridge.overrides import run_overrides
from vaesweep.config.messages import describe
from vaesweep.errors import UserError
from vaesweep.record.run_names import run_name

CONFIG_NAME = "config"
#: The root key a stacked sweep's launch adds to each job (``+vaesweep_stack_part=0,1``: which
#: part of a stack group the job trains); the only key outside the schema a config may hold.
PART_KEY = "vaesweep_stack_part"


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
    check_config_dirs(extra_dirs)
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
        check_overrides(overrides)
        _reject_sweeps(overrides)
        kept = list(overrides) if with_hydra else run_overrides(overrides)
        return hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[*kept, *searchpath_override(extra_dirs)],
            return_hydra_config=with_hydra,
        )


def compose_launch(
    overrides: Sequence[str], launch_overrides: Sequence[str], extra_dirs: Sequence[Path] = ()
) -> tuple[DictConfig, schemas.Config]:
    """Compose one job exactly as it will be launched, and validate it before anything is written.

    ``overrides`` are the user's (and the launcher's) settings, checked as :func:`compose_dict`
    checks them; ``launch_overrides`` are vaesweep's own Hydra settings for the launch (where
    the job goes). Returns the composition with Hydra's settings and the typed, range-checked
    run config. The composition is Hydra's normal one (the one the multirun's sweeper would
    make); a mistake in a ``hydra.*`` setting or a launcher profile is reported here too.
    """
    with hydra_session(extra_dirs):
        check_overrides(overrides)
        _reject_sweeps(overrides)
        cfg = hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[*overrides, *launch_overrides],
            return_hydra_config=True,
        )
        _check_launcher_class(cfg)
        return cfg, to_config(cfg)


def _check_launcher_class(cfg: DictConfig) -> None:
    """The launcher profile's ``_target_`` names a Hydra launcher class that exists: Hydra finds
    out only when it launches, with a traceback, after the sweep's plan or the run's folder was
    written."""
    target = OmegaConf.select(cfg, "hydra.launcher._target_")
    if not target:
        return
    from hydra.plugins.launcher import Launcher

    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        why = f"no such class: {type(err).__name__}"
    else:
        # Any importable name passed here before, and failed in Hydra's launch with a
        # traceback after the sweep's plan was written.
        if isinstance(found, type) and issubclass(found, Launcher):
            return
        why = "not a Hydra launcher plugin"
    raise UserError(
        f"hydra.launcher._target_={target} is not a launcher class ({why}); a launcher "
        "profile (hydra/launcher/<name>.yaml) names one such as "
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
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
        typed = to_config(cfg)  # range checks
    # What the run will use where a null default is filled in from another group.
    cfg.train.steps = typed.train.steps
    return OmegaConf.to_yaml(cfg, resolve=not with_hydra)


def to_config(cfg: DictConfig) -> schemas.Config:
    """DictConfig -> Config; runs every schema's ``__post_init__`` range checks."""
    if "hydra" in cfg:
        # Without Hydra's settings, as Hydra hands a job its config (a masked copy would lose
        # the root's schema type).
        cfg = copy.deepcopy(cfg)
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
    _reject_unknown_keys(cfg)
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, schemas.Config)
    return config


def _reject_unknown_keys(node: DictConfig, prefix: str = "") -> None:
    """A key no schema has (``+data.limt=50`` adds one) is a typo: the typed config would drop
    it without a word, so it is named here, with the nearest key the schema has."""
    kind = OmegaConf.get_type(node)
    if kind is not None and dataclasses.is_dataclass(kind):
        fields = [f.name for f in dataclasses.fields(kind)]
        for key in map(str, node):
            if key not in fields and not (prefix == "" and key == PART_KEY):
                near = difflib.get_close_matches(key, fields, n=1)
                hint = f" Did you mean '{prefix}{near[0]}'?" if near else ""
                raise UserError(f"Key '{prefix}{key}' not in config.{hint}")
    for key in map(str, node):
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            _reject_unknown_keys(child, f"{prefix}{key}.")


def _reject_sweeps(overrides: Sequence[str]) -> None:
    for o in parser().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            raise UserError(
                f"'{o.input_line}' lists several values; one run takes one value "
                f"(use `vaesweep sweep {o.input_line}` to run them all)"
            )


#: Hydra settings that would move results: vaesweep owns where runs go.
OWNED_BY_VAESWEEP = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
#: Hydra settings that name other files it writes (its .hydra folder, its logs, submitit's
#: folder): set on the command line (or replayed from a sweep.json) they could write anywhere.
WRITES_FILES = (
    "hydra.output_subdir",
    "hydra.job_logging",
    "hydra.hydra_logging",
    "hydra.launcher.submitit_folder",
)


def _owned(key: str) -> bool:
    return key in OWNED_BY_VAESWEEP or any(
        key == k or key.startswith(k + ".") for k in WRITES_FILES
    )


def check_overrides(overrides: Sequence[str]) -> None:
    """Each override parses alone (a bad one is named), and none moves the output folders or
    names another file Hydra writes (its logs, its .hydra folder)."""
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key.startswith(WRITES_FILES) and _owned(key):
            raise UserError(
                f"'{o}': vaesweep decides where Hydra writes its files; for other logging "
                "choose a hydra/job_logging config (e.g. hydra/job_logging=disabled), and put "
                "site settings in a --config-dir profile"
            )
        if key in OWNED_BY_VAESWEEP:
            raise UserError(
                f"'{o}': vaesweep decides where runs go; use --outputs DIR for the root and "
                "--name NAME for the run or sweep folder"
            )
        if o.startswith("~") and not key.startswith(("hydra.", "hydra/")):
            # Every key and group of a run is in its schema: deleted, it came back as the
            # schema's default without a word (`~beta` trained beta=1.0), or failed obscurely.
            raise UserError(
                f"'{o}' would delete {key}, which every run needs; set it to a value "
                f"instead, e.g. {key}=VALUE (`vaesweep show` prints the current one)"
            )
        try:
            parser().parse_overrides([o])
        except HydraException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"cannot parse the override '{o}' ({first}); quote values with special "
                "characters, e.g. data.path='/my folder/(2024)'"
            ) from None


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
