"""Run directory names: a run is named by its swept ``key=value`` pairs.

The same overrides always give the same name, which is how a resumed sweep finds its runs;
Hydra computes it inside each job (``hydra.sweep.subdir``), the sweep command before launching.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence


def run_name(task_overrides: Sequence[str], swept_keys: Sequence[str]) -> str:
    """A run's directory name: its swept ``key=value`` pairs, sorted by key.

    With nothing swept, every override names it (``default`` when there are none). The same
    overrides always give the same name, which is how a resumed sweep finds its runs. Hydra
    evaluates this in each job through ``${vaesweep.run_name:...}`` in ``hydra.sweep.subdir``.
    """
    pairs = []
    wanted = {k.lstrip("+~") for k in swept_keys}
    for o in task_overrides:
        key, _, value = o.partition("=")
        bare = key.lstrip("+~")
        if bare.startswith("hydra") or (wanted and bare not in wanted):
            continue
        pairs.append((bare, value))
    name = ",".join(f"{k}={v}" for k, v in sorted(pairs)) or "default"
    name = re.sub(r"[^\w.,=+\-\[\]()@]", "_", name)
    if len(name) > 150:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:139]}_{digest}"
    return name
