"""Rebuild a typed :class:`Config` from its plain-dict form (``Config.to_dict()``).

A run stores its resolved config as a dict in ``summary.json["config"]`` (and in the
checkpoint). Tools that work on finished runs (``vaesweep eval``) turn it back into the typed
schemas here, without Hydra: each group becomes its dataclass, the model schema is chosen by
``model.arch`` and the KL schema by ``kl.method``. Missing keys take the schema's default (an
older run); unknown keys are an error, since silently dropping a setting could evaluate a
different model than the one trained. Range checks run as usual (``__post_init__``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vaesweep.config.data import DataConfig
from vaesweep.config.eval import EvalConfig
from vaesweep.config.groups import OPTION_KEYS, OPTION_SCHEMAS
from vaesweep.config.kl import KL_SCHEMAS
from vaesweep.config.loss import LossConfig
from vaesweep.config.model import MODEL_SCHEMAS
from vaesweep.config.root import Config
from vaesweep.config.tracker import tracker_from_dict
from vaesweep.config.train import TrainConfig
from vaesweep.errors import ConfigError

#: Plain groups of the root config -> schema.
GROUP_SCHEMAS: dict[str, type] = {
    "data": DataConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}


def _build(schema: type, values: Any, group: str) -> Any:
    """``schema(**values)`` after checking ``values`` is a mapping of known field names."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{group}: expected a mapping of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        keys = ", ".join(f"{group}.{k}" for k in unknown)
        raise ConfigError(f"unknown setting(s) {keys} (written by another vaesweep version?)")
    try:
        return schema(**dict(values))
    except TypeError as err:  # e.g. a wrong value type the schema cannot take
        raise ConfigError(f"{group}: {err}") from err


def _choose(table: dict[str, type], values: Any, group: str, key: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{group}: expected a mapping of settings, got {type(values).__name__}")
    name = values.get(key)
    if name not in table:
        raise ConfigError(f"{group}.{key}={name!r} is invalid: expected one of {', '.join(table)}")
    return _build(table[name], values, group)


def config_from_dict(values: Mapping[str, Any]) -> Config:
    """The typed :class:`Config` for ``values`` as produced by ``Config.to_dict()``.

    Round trip: ``config_from_dict(cfg.to_dict()) == cfg``. Raises
    :class:`~vaesweep.errors.ConfigError` (a ``UserError``) naming the offending key.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"config: expected a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} (written by another vaesweep version?)"
        )
    for group, key in OPTION_KEYS.items():
        if group not in values:
            raise ConfigError(f"config has no '{group}' group (needs at least {group}.{key})")
    kwargs: dict[str, Any] = {
        group: _choose(OPTION_SCHEMAS[group], values[group], group, key)
        for group, key in OPTION_KEYS.items()
    }
    for group, schema in GROUP_SCHEMAS.items():
        if group in values:
            kwargs[group] = _build(schema, values[group], group)
    if values.get("tracker") is not None:
        kwargs["tracker"] = tracker_from_dict(values["tracker"], _build)
    for key in ("beta", "seed"):
        if key in values:
            kwargs[key] = values[key]
    try:
        return Config(**kwargs)
    except TypeError as err:  # beta or seed of a type the checks cannot compare (a list)
        raise ConfigError(f"config: {err}") from err


__all__ = ["KL_SCHEMAS", "MODEL_SCHEMAS", "config_from_dict"]
