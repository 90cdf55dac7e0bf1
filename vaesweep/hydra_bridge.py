"""The only module that imports Hydra: composing, validating, expanding grids and launching.

Everything Hydra-specific stays here so the rest of vaesweep is plain Python:

* :func:`compose` turns override strings into a validated :class:`~vaesweep.config.Config`;
* :func:`expand_grid` expands sweep overrides with Hydra's own grammar (``a,b``, ``range()``,
  ``choice()``, ``glob()``) into one override list per run, without running anything;
* :func:`launch` runs a real Hydra multirun (sweeper + launcher plugin) with
  :func:`hydra_task` as the task function; ``train`` is a multirun of one, so every launcher
  works for single runs too.

Launching goes through ``GlobalHydra.instance().hydra.multirun``, the call ``@hydra.main
--multirun`` makes; its signature is unchanged from Hydra 1.1 to 1.4-dev (hydra-core is pinned
below 1.4 and tests/test_hydra_bridge.py covers this surface). Errors in user input are raised
as :class:`~vaesweep.errors.UserError` with one readable line.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vaesweep import config as schemas
from vaesweep.config.messages import describe
from vaesweep.errors import UserError
from vaesweep.sweep.naming import run_name

CONFIG_NAME = "config"
#: Options of the schema-typed groups: {group: {option: dataclass}}.
_GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "model": schemas.MODEL_SCHEMAS,
    "kl": schemas.KL_SCHEMAS,
}


def _register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="base_config", node=schemas.Config)
    for group, options in _GROUP_SCHEMAS.items():
        for option, node in options.items():
            store.store(group=f"schema/{group}", name=option, node=node)


_register_schemas()


def _run_name_resolver(keys: str, _root_: DictConfig) -> str:
    swept = [k for k in keys.split("+") if k] if keys != "-" else []
    return run_name(list(_root_.hydra.overrides.task), swept)


OmegaConf.register_new_resolver("vaesweep.run_name", _run_name_resolver, replace=True)


def run_subdir(swept_keys: Sequence[str]) -> str:
    """The ``hydra.sweep.subdir`` expression naming each run by its swept values."""
    keys = "+".join(k.lstrip("+~") for k in swept_keys) or "-"
    return "${vaesweep.run_name:" + keys + "}"


def config_dir() -> Path:
    """The packaged conf/ directory (the repository's conf/ in an editable install)."""
    return Path(str(resources.files("vaesweep.conf"))).resolve()


def _searchpath_override(extra_dirs: Sequence[Path]) -> list[str]:
    if not extra_dirs:
        return []
    paths = ",".join(f"file://{Path(d).expanduser().resolve()}" for d in extra_dirs)
    return [f"hydra.searchpath=[{paths}]"]


@contextmanager
def _hydra(extra_dirs: Sequence[Path] = ()) -> Iterator[None]:
    for d in extra_dirs:
        if not Path(d).expanduser().is_dir():
            raise UserError(f"config dir {d} does not exist; pass an existing folder of YAML files")
    with (
        _translate_errors(),
        initialize_config_dir(
            config_dir=str(config_dir()), version_base="1.3", job_name="vaesweep"
        ),
    ):
        yield


# --------------------------------------------------------------------------- composing


def compose_dict(
    overrides: Sequence[str], extra_dirs: Sequence[Path] = (), *, with_hydra: bool = False
) -> DictConfig:
    """Compose the config for one run; sweep syntax is an error here.

    Without ``with_hydra``, settings of Hydra itself (``hydra.launcher.partition=gpu``) are
    left out: they belong to the launch, and the launcher they refer to is chosen by
    ``--launcher`` only when launching.
    """
    with _hydra(extra_dirs):
        _reject_sweeps(overrides)
        kept = list(overrides) if with_hydra else _run_overrides(overrides)
        return hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[*kept, *_searchpath_override(extra_dirs)],
            return_hydra_config=with_hydra,
        )


_HOME_VALUE = re.compile(r"^([+~]*[\w.@/-]+)=(~[^,'\"()\[\]{}]*)$")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Overrides as Hydra's grammar wants them: ``key=~/x`` becomes ``key='~/x'``.

    bash expands ``~`` after ``=``, zsh does not, and Hydra's grammar rejects a bare ``~`` in
    a value; the path is expanded where it is used (``Path.expanduser``).
    """
    return [_HOME_VALUE.sub(r"\1='\2'", o) for o in overrides]


def _run_overrides(overrides: Sequence[str]) -> list[str]:
    """Overrides minus Hydra's own dotted settings (``hydra.*``); group choices stay."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]


def compose(overrides: Sequence[str] = (), extra_dirs: Sequence[Path] = ()) -> schemas.Config:
    """Compose and validate one run's config into typed dataclasses."""
    cfg = compose_dict(overrides, extra_dirs)
    with _translate_errors():
        return to_config(cfg)


def to_config(cfg: DictConfig) -> schemas.Config:
    """DictConfig -> Config; runs every schema's ``__post_init__`` range checks."""
    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    config = OmegaConf.to_object(plain)
    assert isinstance(config, schemas.Config)
    return config


def to_yaml(cfg: DictConfig, *, resolve: bool = True) -> str:
    return OmegaConf.to_yaml(cfg, resolve=resolve)


def _reject_sweeps(overrides: Sequence[str]) -> None:
    for o in _parser().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            raise UserError(
                f"'{o.input_line}' lists several values; one run takes one value "
                f"(use `vaesweep sweep {o.input_line}` to run them all)"
            )


def _parser() -> OverridesParser:
    loader = (
        GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    )
    return OverridesParser.create(config_loader=loader)


# --------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class Grid:
    """The runs of a sweep: swept keys, and one override list and value row per run."""

    axes: dict[str, list[str]]
    fixed: list[str]
    jobs: list[list[str]]

    @property
    def swept_keys(self) -> list[str]:
        return list(self.axes)

    def rows(self) -> list[dict[str, str]]:
        """One {swept key: value} dict per run, in launch order."""
        out = []
        for job in self.jobs:
            pairs = dict(o.split("=", 1) for o in job)
            out.append({k: pairs[k] for k in self.axes})
        return out

    def names(self) -> list[str]:
        """Each run's directory name (see :func:`run_name`)."""
        return [run_name(job, self.swept_keys) for job in self.jobs]


def expand_grid(overrides: Sequence[str], extra_dirs: Sequence[Path] = ()) -> Grid:
    """Expand sweep overrides into one override list per run, exactly as BasicSweeper does.

    Sweeps named in config (``hydra.sweeper.params``, e.g. ``+experiment=beta_grid``) come
    first, then the command line. A repeated key keeps its first position and its last value;
    the product varies the last key fastest.
    """
    with _hydra(extra_dirs):
        parser = _parser()
        parsed = parser.parse_overrides(list(overrides))
        for o in parsed:
            if o.is_sweep_override() and o.get_key_element().startswith("hydra"):
                raise UserError(f"'{o.input_line}': Hydra's own settings cannot be swept")
        fixed_lines = [o.input_line for o in parsed if not o.is_sweep_override()]
        params = _sweeper_params(fixed_lines, extra_dirs)
        ordered: dict[str, list[str]] = {}
        swept: list[str] = []
        for o in parser.parse_overrides(params) + parsed:
            key = o.get_key_element()
            if key.startswith("hydra.") or key.startswith("hydra/"):
                continue  # launcher choice etc.: applies to the whole sweep, not to one run
            if o.is_sweep_override():
                if not o.is_discrete_sweep():
                    raise UserError(
                        f"'{o.input_line}' is a continuous range; a grid needs listed values, "
                        "e.g. beta=0.01,0.1,1 or 'seed=range(3)'"
                    )
                ordered[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
                if key not in swept:
                    swept.append(key)
            else:
                ordered[key] = [f"{key}={o.get_value_element_as_str()}"]
                if key in swept:
                    swept.remove(key)
        jobs = [list(combo) for combo in itertools.product(*ordered.values())]
        axes = {k: [v.split("=", 1)[1] for v in ordered[k]] for k in swept}
        fixed = [v[0] for k, v in ordered.items() if k not in axes]
        return Grid(axes=axes, fixed=fixed, jobs=jobs)


def _sweeper_params(fixed_overrides: list[str], extra_dirs: Sequence[Path]) -> list[str]:
    """``hydra.sweeper.params`` from the composed config (named sweeps in conf/experiment).

    Only the overrides that change what is composed (``+experiment=...``, group choices)
    matter here; value overrides are checked per run by :func:`validate_jobs`.
    """
    loader = GlobalHydra.instance().config_loader()
    parser = _parser()
    shape = [
        o.input_line
        for o in parser.parse_overrides(_run_overrides(fixed_overrides))
        if _changes_composition(o, loader)
    ]
    cfg = hydra_compose(
        config_name=CONFIG_NAME,
        overrides=[*shape, *_searchpath_override(extra_dirs)],
        return_hydra_config=True,
    )
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()]


def validate_jobs(grid: Grid, extra_dirs: Sequence[Path] = ()) -> list[schemas.Config]:
    """Compose and range-check every run of a grid before anything starts.

    One invalid run fails the whole sweep, naming the run. Runs that differ only in values
    (not in config-group choices) share one composition, onto which each run's value
    overrides are applied exactly as Hydra applies them after composing; a 100-run beta
    sweep therefore composes once instead of 100 times.
    """
    configs = []
    with _hydra(extra_dirs):
        loader = GlobalHydra.instance().config_loader()
        parser = _parser()
        composed: dict[tuple[str, ...], DictConfig] = {}
        for job, row in zip(grid.jobs, grid.rows()):
            try:
                with _translate_errors():
                    parsed = parser.parse_overrides(_run_overrides(job))
                    shape = [o for o in parsed if _changes_composition(o, loader)]
                    values = [o for o in parsed if not _changes_composition(o, loader)]
                    key = tuple(o.input_line for o in shape)
                    if key not in composed:
                        composed[key] = hydra_compose(
                            config_name=CONFIG_NAME,
                            overrides=[*key, *_searchpath_override(extra_dirs)],
                        )
                    cfg = copy.deepcopy(composed[key])
                    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
                    configs.append(to_config(cfg))
            except UserError as err:
                if not row:
                    raise
                label = ",".join(f"{k}={v}" for k, v in row.items())
                raise UserError(f"run {label}: {err}") from None
    return configs


def _changes_composition(override: Any, loader: Any) -> bool:
    """Group choices and +/~ edits change what is composed; plain values do not."""
    if override.is_add() or override.is_delete() or override.is_force_add():
        return True
    return bool(loader.repository.group_exists(override.key_or_group))


# --------------------------------------------------------------------------- launching


def hydra_task(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's task function: typed config and output dir in, the run's summary dict out.

    Module-level so launchers that pickle it (joblib, submitit) pickle it by reference. A run
    already completed (a resumed sweep relaunches its whole grid) returns its summary before
    torch is imported, so a worker with nothing left to train never pays for that.
    """
    from vaesweep.sweep.index import run_status

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    status, summary = run_status(run_dir)
    if status == "completed" and summary is not None:
        return summary

    from vaesweep.run import run_job  # late: torch is imported inside the job only

    sweep_dir = (
        Path(hydra_cfg.sweep.dir).resolve()
        if hydra_cfg.mode is not None and (str(hydra_cfg.mode) == "RunMode.MULTIRUN")
        else None
    )
    return run_job(to_config(cfg), run_dir, sweep_dir, overrides=list(hydra_cfg.overrides.task))


def launch(
    overrides: Sequence[str],
    *,
    sweep_dir: Path,
    subdir: str,
    extra_dirs: Sequence[Path] = (),
    task: Callable[[DictConfig], Any] = hydra_task,
) -> list[Any]:
    """Run a real Hydra multirun of ``overrides`` into ``sweep_dir/<subdir>``.

    ``subdir`` is a Hydra expression such as ``${hydra.job.override_dirname}``. Returns the
    flattened ``JobReturn`` list. The launcher is whatever ``hydra/launcher=...`` selects.
    """
    hydra_overrides = [
        f"hydra.sweep.dir={_quote(str(sweep_dir))}",
        f"hydra.sweep.subdir={subdir}",
        "hydra.mode=MULTIRUN",
        *_searchpath_override(extra_dirs),
    ]
    with _hydra(extra_dirs), _sweeper_trusts_validation():
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        batches = hydra.multirun(
            config_name=CONFIG_NAME,
            task_function=task,
            overrides=[*overrides, *hydra_overrides],
            with_log_configuration=True,
        )
    _release_joblib_workers()
    return [r for batch in batches for r in batch]


@contextmanager
def _sweeper_trusts_validation() -> Iterator[None]:
    """Skip BasicSweeper's second composition of every job while vaesweep launches.

    Before launching, the sweeper composes each job once more "to catch composition errors
    early" (about 70 ms a run, serially, before the first run starts). vaesweep has already
    composed and range-checked every run (:func:`validate_jobs`, :func:`compose`), and the
    launcher composes each job again where it runs, so the check is dropped for the duration
    of :func:`launch` only.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    own = BasicSweeper.__dict__.get("validate_batch_is_legal")
    BasicSweeper.validate_batch_is_legal = lambda self, batch: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del BasicSweeper.validate_batch_is_legal
        else:
            BasicSweeper.validate_batch_is_legal = own  # type: ignore[method-assign]


def _release_joblib_workers() -> None:
    """Stop the joblib launcher's idle worker processes now rather than at interpreter exit.

    Loky keeps its workers for reuse and only ends them in an exit handler, which kept the
    command waiting about a second after the last run had finished. The executor is taken as
    it is: ``get_reusable_executor()`` with its default arguments would not match the one
    joblib made, and would replace it (waiting for its workers) with a new pool to shut down.
    """
    import sys

    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def _quote(value: str) -> str:
    """Quote a value for Hydra's override grammar unless it is already plain."""
    if re.fullmatch(r"[\w./\-${}:]+", value) and "," not in value:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def launcher_names(extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Options of hydra/launcher visible to Hydra (plugins installed + conf/hydra/launcher)."""
    with _hydra(extra_dirs):
        loader = GlobalHydra.instance().config_loader()
        names = set(loader.get_group_options("hydra/launcher"))
    # The extra dirs enter Hydra's search path only through the composing override, so
    # their launcher profiles are listed from disk.
    for d in extra_dirs:
        names.update(p.stem for p in (Path(d).expanduser() / "hydra" / "launcher").glob("*.yaml"))
    return sorted(names)


def launcher_target(name: str, extra_dirs: Sequence[Path] = ()) -> str:
    """The ``_target_`` class path of launcher profile ``name`` (``hydra/launcher=name``)."""
    with _hydra(extra_dirs):
        cfg = hydra_compose(
            config_name=CONFIG_NAME,
            overrides=[f"hydra/launcher={name}", *_searchpath_override(extra_dirs)],
            return_hydra_config=True,
        )
    return str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))


def group_options(group: str) -> list[str]:
    with _hydra():
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


# --------------------------------------------------------------------------- errors


@contextmanager
def _translate_errors() -> Iterator[None]:
    """Turn Hydra/OmegaConf exceptions about user input into one-line UserErrors."""
    try:
        yield
    except UserError:
        raise
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise UserError(describe(err)) from None
