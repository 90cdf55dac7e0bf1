"""What was swept, and which runs form one setting: the swept-value columns of summary.csv and
each run's group and label.

The swept keys are the sweep plans' keys, then any config key that differs between runs and no
plan key covers. Runs that share their swept values except the seed (without a sweep plan: their
whole config except the seed) form a *group*, a "setting", named by the values that vary
("β=0.1, latent_dim=8"); :mod:`vaesweep.report.data.seed_stats` averages over its seeds.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from vaesweep.report.data.load import Loaded, Run
from vaesweep.report.data.per_run import FINAL_METRICS, flatten
from vaesweep.report.data.seed_stats import SEED_METRICS

#: Config keys that differ between runs without changing what is trained.
NOISE_KEYS = frozenset(
    {
        "seed",
        "train.threads",
        "train.progress",
        "train.device",
        "data.root",
        "data.cache_dir",
        "data.download",
    }
)
#: Column names the report owns; a swept key with one of these names gets " (swept)".
RESERVED = frozenset(
    {
        "run",
        "source",
        "group",
        "label",
        "method",
        "status",
        "error",
        *FINAL_METRICS,
        *SEED_METRICS,
    }
)


def _config_value(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):  # a config group (kl=warmup): name it by its method/name
        for k in ("method", "name", "arch", "likelihood"):
            if k in node:
                return node[k]
        return json.dumps(node, sort_keys=True)
    return node


def swept_keys(loaded: Loaded, configs: dict[str, dict[str, Any]]) -> list[str]:
    """Plan keys first; then config keys that differ between runs and no plan key covers."""
    keys: list[str] = []
    for source in loaded.sources:
        keys += [k for k in source.swept_keys if k not in keys]
    flat = [flatten(c) for c in configs.values() if c]
    if len(flat) > 1:
        names = sorted(set().union(*flat))
        differing = [
            k
            for k in names
            if k not in NOISE_KEYS
            and not k.startswith("tracker.")  # watching runs does not change them
            and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
        ]
        for k in differing:
            covered = any(k == s or k.startswith(s + ".") for s in keys)
            # Parameters of one method (kl.lam) vary only because the method varies.
            if not covered and not (k.startswith("kl.") and k != "kl.method"):
                keys.append(k)
    if "seed" in keys:  # seed last: it is averaged over, not a parameter
        keys = [k for k in keys if k != "seed"] + ["seed"]
    return keys[:8]


def _column(key: str) -> str:
    return f"{key} (swept)" if key in RESERVED and key not in ("beta", "seed") else key


def _label_part(key: str, value: Any) -> str:
    text = _fmt_value(value)
    if key == "beta":
        return f"β={text}"
    if key in ("kl", "kl.method"):
        return text
    return f"{key.split('.')[-1]}={text}"


def _setting_label(beta: Any, method: Any, fallback: str) -> str:
    """The name of a setting that no swept key names (only seeds vary, or a single run): its β,
    and its KL method when not constant. A run's name ("seed=0") would name one seed, not the
    setting its seeds share."""
    if not isinstance(beta, float) or beta != beta:
        return fallback
    name = _label_part("beta", beta)
    return name if method in (None, "constant") else f"{method}, {name}"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def _distinct(column: pd.Series) -> int:
    """How many different values, a missing one counted as one more (``astype(str)`` keeps NaN
    missing since pandas 3, so it cannot tell "unset" from "set" on its own)."""
    return column.map(lambda v: _fmt_value(v) if _present(v) else "\0missing").nunique()


def _fmt_value(value: Any) -> str:
    if not _present(value):
        return "null"  # as config.yaml spells an unset key
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _signature(config: dict[str, Any]) -> str:
    flat = {k: v for k, v in flatten(config).items() if k not in NOISE_KEYS}
    return json.dumps(flat, sort_keys=True, default=str)


def add_swept_columns(
    table: pd.DataFrame,
    runs: dict[str, Run],
    configs: dict[str, dict[str, Any]],
    keys: list[str],
) -> list[str]:
    """Insert one column per swept key after run and source; returns their names in order."""
    swept: list[str] = []
    for key in keys:
        col = _column(key)
        if col in table.columns and col not in ("beta", "seed"):
            col = f"{key} (swept)"
        if col in ("beta", "seed"):
            swept.append(col)
            continue
        vals = []
        for k, r in runs.items():
            v = r.values.get(key)
            if v is None:
                v = _config_value(configs[k], key)
            vals.append(v)
        table.insert(2 + len(swept), col, vals)
        swept.append(col)
    return swept


def add_groups(
    table: pd.DataFrame,
    runs: dict[str, Run],
    configs: dict[str, dict[str, Any]],
    keys: list[str],
    swept: list[str],
) -> None:
    """Add each run's ``group``, ``label``, ``others`` (what differs besides beta) and
    ``beta_name`` columns."""
    groups, labels, others = [], [], []
    params = [(k, c) for k, c in zip(keys, swept) if k != "seed"]
    # Name groups by what varies; a key swept over one value (beta=1 in a methods sweep) only
    # when nothing else does.
    varying = [(k, c) for k, c in params if _distinct(table[c]) > 1]
    params = varying or params
    for key, run in runs.items():
        row = table.loc[key]
        # A key set in some runs and unset in others (train.epochs=20 beside the default steps)
        # names the unset ones too: they are another setting, not more seeds of the same one.
        parts = [_label_part(k, row[c]) for k, c in params if _present(row[c]) or (k, c) in varying]
        label = ", ".join(parts) if parts else _setting_label(row["beta"], row["method"], run.name)
        # What else differs besides beta: the reading compares betas only within one of these.
        others.append(
            ", ".join(
                f"{k}={_fmt_value(row[c])}"
                for k, c in params
                if k != "beta" and (_present(row[c]) or (k, c) in varying)
            )
        )
        if configs[key]:
            group = f"{run.source}|{_signature(configs[key])}" if not params else label
        else:  # no config: the swept values (without seed) still say what the run was
            group = label if parts else key
        groups.append(group)
        labels.append(label)
    table["group"] = groups
    table["others"] = others
    table["beta_name"] = [f"β={b:g}" if b == b else "β=?" for b in table["beta"]]
    # Two different configs that print the same label get numbered apart.
    first_label: dict[str, str] = {}
    for g, lab in zip(groups, labels):
        first_label.setdefault(g, lab)
    seen: dict[str, int] = {}
    final: dict[str, str] = {}
    for g, lab in first_label.items():
        seen[lab] = seen.get(lab, 0) + 1
        final[g] = lab if seen[lab] == 1 else f"{lab} #{seen[lab]}"
    table["label"] = [final[g] for g in groups]
