"""The user's ``--config-dir`` folders, checked before Hydra reads them (no Hydra here).

Hydra reads a config file with OmegaConf's YAML loader and reports what it cannot take as a
traceback (a duplicate key), a decode error without the file's name, or not at all: an alias
bomb ("billion laughs": a few lines whose anchors expand to billions of values) or an anchor
used inside itself makes OmegaConf build the expansion until memory or the recursion limit
runs out. Each file is read here first, and any such problem is one line naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vaesweep.errors import UserError, folder_problem

#: The most values (scalars, lists and mappings) a config file's aliases may expand it to: a
#: config is a few hundred values; an alias bomb is billions.
MAX_EXPANDED_VALUES = 10_000


def check_config_dirs(extra_dirs: Sequence[Path]) -> None:
    """Each ``--config-dir`` is a readable folder whose YAML files Hydra can take."""
    for d in extra_dirs:
        folder = Path(d).expanduser()
        problem = folder_problem(folder)
        if problem:
            raise UserError(f"config dir {d} {problem}; pass a folder of YAML files you can read")
        check_yaml_files(folder)


def check_yaml_files(folder: Path) -> None:
    """Every YAML file of a ``--config-dir``: UTF-8, one valid YAML document of plain data (no
    ``!!python`` tags: a tag names a Python callable, which a config must never run), no key
    twice in a mapping, no anchor used inside itself, aliases that expand to a sane size."""
    for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        try:
            text = path.read_text(encoding="utf-8")
            _check_structure(path, yaml.compose(text, Loader=yaml.SafeLoader))
            yaml.safe_load(text)
        except UnicodeDecodeError as err:
            raise UserError(
                f"{path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                f"{err.start}); save it as UTF-8"
            ) from None
        except yaml.constructor.ConstructorError as err:
            raise UserError(
                f"{path}{_at(err)}: the tag {err.problem.rsplit(' ', 1)[-1] if err.problem else ''}"
                " is not allowed; configs hold plain values (no !!python tags)"
            ) from None
        except yaml.YAMLError as err:
            what = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UserError(f"{path}{_at(err)} is not valid YAML: {what}") from None
        except RecursionError:
            raise UserError(
                f"{path} nests lists or mappings too deeply to read; a config is a few levels deep"
            ) from None
        except OSError as err:
            raise UserError(f"cannot read {path}: {err.strerror}") from None


class _SelfAlias(Exception):
    def __init__(self, node: Any) -> None:
        self.node = node


def _check_structure(path: Path, root: Any) -> None:
    """Duplicate keys, self-containing anchors and the size the aliases expand to, read from
    the composed node graph (an alias is the anchored node itself, so this walk is linear in
    the file's length, not in its expansion)."""
    if root is None:  # an empty file
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def expanded(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise _SelfAlias(node)
        open_nodes.add(id(node))
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(path, node)
            children = [part for pair in node.value for part in pair]
        size = 1 + sum(expanded(child) for child in children)
        open_nodes.discard(id(node))
        sizes[id(node)] = size
        return size

    try:
        total = expanded(root)
    except _SelfAlias as err:
        raise UserError(
            f"{path}{_at_mark(err.node.start_mark)}: an anchor is used inside itself (through an "
            "alias to it), so the value would contain itself without end; write it out instead"
        ) from None
    if total > MAX_EXPANDED_VALUES and total > len(sizes):
        raise UserError(
            f"{path}: its aliases (*name) expand it to {total:,} values, more than a config "
            f"holds (at most {MAX_EXPANDED_VALUES:,}); write the values out or use fewer aliases"
        )


def _no_duplicate_keys(path: Path, node: Any) -> None:
    """A key given twice in one mapping: YAML leaves which one wins undefined, OmegaConf
    refuses it with a traceback."""
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if (key.tag, key.value) in seen:
            raise UserError(
                f"{path}{_at_mark(key.start_mark)}: the key '{key.value}' appears twice in one "
                "mapping; keep one of them"
            )
        seen.add((key.tag, key.value))


def _at(err: Any) -> str:
    return _at_mark(getattr(err, "problem_mark", None))


def _at_mark(mark: Any) -> str:
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
