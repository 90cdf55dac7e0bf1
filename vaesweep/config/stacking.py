"""Which runs of a sweep can train together as one stack (README, "Stacked sweeps").

Runs join one stack when their configs differ only in numbers that change neither a tensor
shape nor the data pipeline: ``beta``, ``seed``, the parameters of the KL method (``kl.*``
except ``kl.method``: each member keeps its own controller) and ``loss.sigma`` (each member
keeps its own likelihood). Anything else (data, model, batch size, epochs, lr, likelihood,
KL method, evaluation) starts a new stack. Settings that do not change results
(``train.progress``, ``train.checkpoint_every_s``) are ignored. No torch here: the sweep
driver groups runs before any training process starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from vaesweep.config.root import Config

#: The keys whose values may differ inside one stack ("kl.*" means every kl key but method).
STACKABLE_KEYS = ("beta", "seed", "kl.*", "loss.sigma")
#: Settings that may differ without changing what is trained.
IGNORED_KEYS = ("train.progress", "train.checkpoint_every_s")

#: Runs per stack unless ``--stack-size`` says otherwise: measured on 2 CPU cores, 8 members
#: of the default digits model per step were 2.2x faster than 8 sequential steps, 16 members
#: hardly more (bench/bench_stack.py), while memory grows with every member.
DEFAULT_STACK_SIZE = 8
#: Runs per stack on a GPU, unless ``--stack-size`` says otherwise or its memory holds fewer.
#: Measured on an H200 (bench/bench_gpu.py; the default conv model on Fashion-MNIST): one
#: epoch of 8, 16, 32 and 64 stacked members trained 6.5, 9.7, 14.9 and 21x the images per
#: second of one run, and a 16-value beta sweep took 1.41x one run's wall time as one stack
#: of 16 against 1.77x as two stacks of 8. Past 32 the gain per member halves while the
#: memory keeps growing with every member.
GPU_STACK_SIZE = 32


def stackable_key(key: str) -> bool:
    """Whether a swept override key (``beta``, ``kl.epochs``, ``model.width``...) may differ
    inside one stack; group choices (``kl=warmup``) and added keys (``+x``) may not."""
    if key.startswith(("+", "~")):
        return False
    return key in ("beta", "seed", "loss.sigma") or (key.startswith("kl.") and key != "kl.method")


def stack_key(config: Config) -> str:
    """Equal for runs that can share a stack."""
    d: dict[str, Any] = config.to_dict()
    d.pop("beta")
    d.pop("seed")
    d["kl"] = {"method": d["kl"]["method"]}
    d["loss"].pop("sigma")
    for key in IGNORED_KEYS:
        section, name = key.split(".")
        d[section].pop(name)
    return json.dumps(d, sort_keys=True, default=str)


def group_stacks(configs: Sequence[Config], max_size: int) -> list[list[int]]:
    """Indices of ``configs`` per stack, in order of first appearance; a group larger than
    ``max_size`` is cut into consecutive stacks of at most ``max_size`` runs."""
    if max_size < 1:
        raise ValueError("max_size must be >= 1")
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(stack_key(config), []).append(i)
    stacks = []
    for members in groups.values():
        stacks += [members[i : i + max_size] for i in range(0, len(members), max_size)]
    return sorted(stacks, key=lambda s: s[0])
