"""One readable line for a config mistake, from the exceptions Hydra and OmegaConf raise.

Works on the exception chain's messages and on the schemas' field names only, so it needs no
Hydra import: ``Key 'bta' not in config. Did you mean 'beta'?``, ``no model named
'transformer'; available: conv, mlp``, ``'model.hidden' belongs to model=mlp``.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from vaesweep.config.groups import OPTION_SCHEMAS
from vaesweep.config.root import Config
from vaesweep.errors import ConfigError

_GROUP_SCHEMAS = OPTION_SCHEMAS


def _innermost(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


_KEY_NOT_IN = re.compile(r"Key '([^']+)' (?:is )?not in (?:struct|'[^']*')")


def describe(err: BaseException) -> str:
    root = _innermost(err)
    if isinstance(root, ConfigError):
        return str(root)
    text = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    full_key = getattr(root, "full_key", None)
    match = _KEY_NOT_IN.search(str(root)) or _KEY_NOT_IN.search(str(err))
    if match:
        key = full_key or match.group(1)
        parent, _, leaf = key.rpartition(".")
        return f"Key '{key}' not in config.{_did_you_mean(parent, leaf)}"
    if "Could not find" in str(err):
        return _describe_missing_option(str(err))
    if "Could not override" in str(err):
        key = str(err).split("'")[1].split("=")[0]
        parent, _, leaf = key.rpartition(".")
        return f"Key '{key}' not in config.{_did_you_mean(parent, leaf)}"
    if "could not be converted" in text or "Value '" in text:
        where = f" (key {full_key})" if full_key else ""
        return f"{text.split(', full_key')[0]}{where}"
    if "Missing mandatory value" in text:
        key = full_key or text.split(":")[-1].strip()
        return f"{key} must be set (Missing mandatory value), e.g. {key}=..."
    if any(m in str(err) for m in ("mismatched input", "no viable alternative", "LexerNoViable")):
        where = re.search(r"(\S+=\S*) \^", str(err))
        what = f" '{where.group(1)}'" if where else ""
        return (
            f"cannot parse the override{what}: quote values with special characters, "
            "e.g. data.path='/my folder/(2024)'"
        )
    return " ".join(str(err).split()) or text


def _did_you_mean(parent: str, leaf: str) -> str:
    owners = [
        option
        for option, schema in _GROUP_SCHEMAS.get(parent, {}).items()
        if leaf in vars(schema())
    ]
    if owners:
        choices = " or ".join(f"{parent}={o}" for o in owners)
        return f" '{parent}.{leaf}' belongs to {choices}."
    try:
        cfg = Config()
        keys: list[str] = list(vars(cfg))
        node: Any = cfg
        for part in parent.split(".") if parent else []:
            node = getattr(node, part)
            keys = list(vars(node)) if hasattr(node, "__dict__") else []
    except Exception:
        keys = []
    keys += [f for group in _GROUP_SCHEMAS.get(parent, {}).values() for f in vars(group())]
    close = difflib.get_close_matches(leaf, sorted(set(keys)), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" Did you mean '{parent + '.' if parent else ''}{close[0]}'?"


def _describe_missing_option(text: str) -> str:
    group = re.search(r"Could not find '([^']+)/([^']+)'", text)
    options = re.search(r"Available options in '[^']+':\n((?:\t[^\n]+\n?)*)", text)
    if not group:
        return " ".join(text.split())
    names = options.group(1).split() if options else []
    names = [n for n in names if not n.startswith("base_")]
    hint = f"; available: {', '.join(names)}" if names else ""
    return f"no {group.group(1)} named '{group.group(2)}'{hint}"
