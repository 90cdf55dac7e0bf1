"""A sweep's grid: expand sweep overrides with Hydra's own grammar and validate every run.

:func:`expand_grid` understands everything BasicSweeper does (``a,b``, ``range()``,
``choice()``, ``glob()``, named sweeps in ``hydra.sweeper.params``) without running anything;
:func:`validate_jobs` composes and range-checks every run before the first one starts.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.types import ChoiceSweep, Glob, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf

from vaesweep import config as schemas
from vaesweep.bridge.compose import (
    CONFIG_NAME,
    check_overrides,
    hydra_session,
    parser,
    searchpath_override,
    to_config,
    translate_errors,
)
from vaesweep.bridge.hydra_internals import apply_value_overrides
from vaesweep.bridge.overrides import run_overrides
from vaesweep.errors import UserError
from vaesweep.record.run_names import run_name

#: The most runs one sweep may hold (README, "Sweeps"): a grid is checked before it is built, so
#: ``seed=range(100000)`` or a product of long lists is one line, not minutes of planning.
MAX_RUNS = 10_000


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
        """Each run's directory name (see :func:`~vaesweep.record.run_names.run_name`)."""
        return [run_name(job, self.swept_keys) for job in self.jobs]


def expand_grid(overrides: Sequence[str], extra_dirs: Sequence[Path] = ()) -> Grid:
    """Expand sweep overrides into one override list per run, exactly as BasicSweeper does.

    Sweeps named in config (``hydra.sweeper.params``, e.g. ``+experiment=beta_grid``) come
    first, then the command line. A repeated key keeps its first position and its last value;
    the product varies the last key fastest.
    """
    with hydra_session(extra_dirs):
        check_overrides(overrides)
        parse = parser()
        loader = GlobalHydra.instance().config_loader()
        parsed = parse.parse_overrides(list(overrides))
        for o in parsed:
            if o.is_sweep_override() and o.get_key_element().startswith("hydra"):
                raise UserError(f"'{o.input_line}': Hydra's own settings cannot be swept")
        fixed_lines = [_line(o) for o in parsed if not o.is_sweep_override()]
        params = _sweeper_params(fixed_lines, extra_dirs)
        ordered: dict[str, list[str]] = {}
        swept: list[str] = []
        for o in parse.parse_overrides(params) + parsed:
            key = o.get_key_element()
            if key.startswith("hydra.") or key.startswith("hydra/"):
                continue  # launcher choice etc.: applies to the whole sweep, not to one run
            if o.is_sweep_override():
                if not o.is_discrete_sweep():
                    raise UserError(
                        f"'{o.input_line}' is a continuous range; a grid needs listed values, "
                        "e.g. beta=0.01,0.1,1 or 'seed=range(3)'"
                    )
                ordered[key] = [f"{key}={v}" for v in _sweep_values(o, loader)]
                if key not in swept:
                    swept.append(key)
            else:
                ordered[key] = [f"{key}={o.get_value_element_as_str()}"]
                if key in swept:
                    swept.remove(key)
        _check_size({k: len(ordered[k]) for k in swept})
        jobs = [list(combo) for combo in itertools.product(*ordered.values())]
        axes = {k: [v.split("=", 1)[1] for v in ordered[k]] for k in swept}
        fixed = [v[0] for k, v in ordered.items() if k not in axes]
        return Grid(axes=axes, fixed=fixed, jobs=jobs)


def _sweep_values(override: Override, loader: Any) -> list[str]:
    """A sweep's values as override strings; refused with one line when it has none (a glob
    matching no option, an empty range) or more than a sweep may hold: a range is measured
    before it is listed, so ``seed=range(10**9)`` costs nothing."""
    value = override.value()
    if isinstance(value, RangeSweep):
        _check_size({override.get_key_element(): _range_length(override, value)})
    elif isinstance(value, ChoiceSweep):  # listed values: the count said is the true one
        _check_size({override.get_key_element(): len(value.list)})
    values = list(itertools.islice(override.sweep_string_iterator(), MAX_RUNS + 1))
    if not values:
        key = override.get_key_element()
        options = (
            f" (options: {', '.join(loader.get_group_options(key))})"
            if isinstance(value, Glob) and loader.repository.group_exists(key)
            else ""
        )
        raise UserError(
            f"'{_line(override)}' gives no values{options}; a swept key needs at least one"
        )
    _check_size({override.get_key_element(): len(values)})
    return values


def _range_length(override: Override, sweep: RangeSweep) -> int:
    """How many values ``range(start, stop, step)`` gives, without listing them (Hydra's float
    range with step 0 never ends)."""
    assert sweep.start is not None and sweep.stop is not None
    start, stop, step = (Decimal(str(x)) for x in (sweep.start, sweep.stop, sweep.step))
    if step == 0:
        raise UserError(f"'{_line(override)}' has a step of 0; e.g. 'seed=range(0,10,2)'")
    return max(0, math.ceil((stop - start) / step))


def _check_size(lengths: dict[str, int]) -> None:
    """Refuse a grid of more than :data:`MAX_RUNS` runs before it is built."""
    total = math.prod(lengths.values())
    if total > MAX_RUNS:
        product = " x ".join(f"{n:,} {k}" for k, n in lengths.items())
        raise UserError(
            f"this sweep would be {total:,} runs ({product}); a sweep holds at most "
            f"{MAX_RUNS:,}: sweep fewer values, or split it into several sweeps"
        )


def _sweeper_params(fixed_overrides: list[str], extra_dirs: Sequence[Path]) -> list[str]:
    """``hydra.sweeper.params`` from the composed config (named sweeps in conf/experiment).

    Only the overrides that change what is composed (``+experiment=...``, group choices)
    matter here; value overrides are checked per run by :func:`validate_jobs`.
    """
    loader = GlobalHydra.instance().config_loader()
    shape = [
        _line(o)
        for o in parser().parse_overrides(run_overrides(fixed_overrides))
        if _changes_composition(o, loader)
    ]
    cfg = hydra_compose(
        config_name=CONFIG_NAME,
        overrides=[*shape, *searchpath_override(extra_dirs)],
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
    with hydra_session(extra_dirs):
        loader = GlobalHydra.instance().config_loader()
        parse = parser()
        composed: dict[tuple[str, ...], DictConfig] = {}
        for job, row in zip(grid.jobs, grid.rows()):
            try:
                with translate_errors():
                    parsed = parse.parse_overrides(run_overrides(job))
                    shape = [o for o in parsed if _changes_composition(o, loader)]
                    values = [o for o in parsed if not _changes_composition(o, loader)]
                    key = tuple(_line(o) for o in shape)
                    if key not in composed:
                        composed[key] = hydra_compose(
                            config_name=CONFIG_NAME,
                            overrides=[*key, *searchpath_override(extra_dirs)],
                        )
                    cfg = copy.deepcopy(composed[key])
                    apply_value_overrides(values, cfg)
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


def _line(override: Override) -> str:
    """The override as typed; Hydra types it ``str | None``, but every parsed override has it."""
    assert override.input_line is not None
    return override.input_line
