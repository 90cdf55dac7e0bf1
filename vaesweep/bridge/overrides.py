"""Command-line overrides before Hydra parses them (this module does not import Hydra)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from vaesweep.errors import UserError

_HOME_VALUE = re.compile(r"^([+~]*[\w.@/-]+)=(~[^,'\"()\[\]{}]*)$")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Overrides as Hydra's grammar wants them: ``key=~/x`` becomes ``key='~/x'``.

    bash expands ``~`` after ``=``, zsh does not, and Hydra's grammar rejects a bare ``~`` in
    a value; the path is expanded where it is used (``Path.expanduser``).
    """
    return [_HOME_VALUE.sub(r"\1='\2'", o) for o in overrides]


def reject_repeated_keys(overrides: Sequence[str]) -> None:
    """Each key at most once on a command line (``+key=``, ``key=`` and ``~key`` are one key).

    Hydra takes the last of ``beta=0.1,1 beta=5`` without a word: the sweep the user listed
    became one run. Repeating a key is a mistake to name, not to guess about.
    """
    seen: dict[str, str] = {}
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key in seen:
            raise UserError(
                f"{key} is given twice ('{seen[key]}' and '{o}'); give each key once "
                f"(values to sweep go in one override, e.g. {key}=A,B)"
            )
        seen[key] = o


def run_overrides(overrides: Sequence[str]) -> list[str]:
    """Overrides minus Hydra's own dotted settings (``hydra.*``); group choices stay."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]


def has_key(overrides: Sequence[str], key: str) -> bool:
    """Whether ``key`` is set (``key=``, ``+key=``, ``~key``) among ``overrides``."""
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


def quote(value: str) -> str:
    """Quote a value for Hydra's override grammar unless it is already plain.

    Plain is ASCII only: the grammar's unquoted values take no other letters, so a path with
    an accent (``/home/josé``) must be quoted.
    """
    if re.fullmatch(r"[\w./\-${}:]+", value, flags=re.ASCII) and "," not in value:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
