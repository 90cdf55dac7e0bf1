"""The YAML under conf/ shows the schema defaults and never disagrees with them.

The dataclasses in vaesweep/config/ own every default (``config_from_dict`` fills an old run's
missing keys from them); the YAML files restate them so users see each key, its default and
a comment where they edit. Conventions, checked here for every group and option on disk:

* a *reference* file (one that extends no other vaesweep file) lists every field of its schema
  with a comment, at exactly the dataclass default: conf/<group>/default.yaml, each
  conf/model|kl/<option>.yaml, conf/base/data.yaml; the root keys of conf/config.yaml;
* a *variant* extends another file (``defaults: [default, _self_]``, ``[/base/data@_here_]``)
  and sets only what it changes; every key it does not set composes to the default.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from vaesweep import config as schemas
from vaesweep.bridge import compose as bridge
from vaesweep.config.loss import LIKELIHOODS
from vaesweep.config.tracker import TRACKER_SCHEMAS

CONF = Path(__file__).resolve().parents[1] / "conf"
#: Config groups: fields of the root schema with a folder of options under conf/.
GROUPS = [f.name for f in dataclasses.fields(schemas.Config) if (CONF / f.name).is_dir()]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
#: Groups whose options each fill their own section (``# @package tracker.<option>``), so
#: several can be chosen at once (``tracker=[tensorboard,mlflow]``): such a file is the
#: reference for its section's schema.
SECTIONS: dict[str, dict[str, type]] = {"tracker": TRACKER_SCHEMAS}


def _raw(path: Path) -> tuple[dict[str, Any], list[Path]]:
    """(the keys a file sets itself, the vaesweep YAML files it extends)."""
    # OmegaConf's reading, as Hydra composes it (YAML 1.1 alone reads 1.0e8 as a string).
    raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
    assert isinstance(raw, dict)
    extends = []
    for entry in raw.pop("defaults", []):
        if not isinstance(entry, str) or entry == "_self_" or entry.startswith("/schema/"):
            continue  # _self_, and the typed schema node that bridge registers
        name = entry.split("@")[0]
        base = CONF / f"{name[1:]}.yaml" if name.startswith("/") else path.parent / f"{name}.yaml"
        extends.append(base)
    return raw, extends


def _commented(path: Path) -> set[str]:
    """Top-level keys with a comment at the end of their line or just above (not the header)."""
    lines = path.read_text().splitlines()
    out = set()
    for i, line in enumerate(lines):
        match = re.match(r"([A-Za-z_]\w*):(.*)", line)
        if not match:
            continue
        start = i
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        if "#" in match.group(2) or 0 < start < i:
            out.add(match.group(1))
    return out


def _reference_problems(path: Path, key_prefix: str, expected: dict[str, Any], own: str) -> list:
    """A reference file lists every field (bar the option's own discriminator), commented,
    at exactly the default."""
    raw, _ = _raw(path)
    where = path.relative_to(CONF)
    problems = [
        f"{where}: {key_prefix}{k}={raw[k]!r} but the schema default is {expected[k]!r}"
        for k in raw
        if k in expected and raw[k] != expected[k]
    ]
    problems += [
        f"{where}: {key_prefix}{k} is not shown (schema default {v!r})"
        for k, v in expected.items()
        if k not in raw and v != own
    ]
    problems += [f"{where}: {key_prefix}{k} has no comment" for k in set(raw) - _commented(path)]
    return problems


#: Group -> keys whose null default :class:`vaesweep.config.Config` resolves from other groups.
FILLED_BY_ROOT = {"train": ("steps",)}


def drift(group: str, option: str, defaults: dict[str, Any] | None = None) -> list[str]:
    """Every disagreement between ``group=option`` as composed and the schema's defaults."""
    path = CONF / group / f"{option}.yaml"
    own, extends = _raw(path)
    required = [f"{group}.{k}=placeholder" for k, v in own.items() if v == "???"]
    node = getattr(bridge.compose([f"{group}={option}", *required]), group)
    prefix = f"{group}."
    if option in SECTIONS.get(group, {}):
        node, prefix = getattr(node, option), f"{group}.{option}."
    composed = dataclasses.asdict(node)
    expected = defaults if defaults is not None else dataclasses.asdict(type(node)())
    # Keys whose null default the root config fills in from another group (train.steps from
    # data.name) compose to the filled-in value.
    filled = {k for k in FILLED_BY_ROOT.get(group, ()) if expected.get(k) is None}
    problems = [
        f"{group}={option} composes {prefix}{k}={composed[k]!r}; the schema default is "
        f"{expected[k]!r}"
        for k in composed
        if k not in own and k not in filled and composed[k] != expected[k]
    ]
    chain = extends if extends else [path]
    while chain:
        reference = chain.pop()
        _, further = _raw(reference)
        if further:
            chain += further
        else:
            problems += _reference_problems(reference, prefix, expected, option)
    return problems


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_file_agrees_with_its_schema(group: str, option: str) -> None:
    assert drift(group, option) == []


def test_the_check_sees_a_changed_default() -> None:
    defaults = dataclasses.asdict(schemas.TrainConfig())
    defaults["lr"] = 0.01
    problems = drift("train", "quick", defaults)
    assert problems and all("train.lr" in p for p in problems)
    assert any("default.yaml: train.lr=0.001 but the schema default is 0.01" in p for p in problems)


def test_every_group_has_a_folder() -> None:
    assert {"data", "model", "loss", "kl", "train", "eval", "tracker"} <= set(GROUPS)


def test_root_keys_agree_with_the_root_schema() -> None:
    root = CONF / "config.yaml"
    raw, _ = _raw(root)
    expected = {
        f.name: f.default
        for f in dataclasses.fields(schemas.Config)
        if f.default is not dataclasses.MISSING and f.name not in GROUPS
    }
    assert set(raw) - {"hydra"} == set(expected)
    assert _reference_problems(root, "", expected, own="") == []
    cfg = bridge.compose([])
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_listed_options_in_config_yaml_are_the_options_on_disk() -> None:
    for line in (CONF / "config.yaml").read_text().splitlines():
        match = re.match(r"\s*- (\w+): \w+\s+# ([\w |]+)$", line)
        if match and "|" in match.group(2):
            listed = {name.strip() for name in match.group(2).split("|")}
            on_disk = {p.stem for p in (CONF / match.group(1)).glob("*.yaml")}
            assert listed == on_disk, match.group(1)


def test_the_likelihood_comment_lists_every_likelihood() -> None:
    line = next(
        x for x in (CONF / "loss/default.yaml").read_text().splitlines() if x.startswith("likeli")
    )
    assert [n.strip() for n in line.split("#", 1)[1].split("|")] == list(LIKELIHOODS)
