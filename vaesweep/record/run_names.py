"""Run directory names: a run is named by its swept ``key=value`` pairs.

The same overrides always give the same name, which is how a resumed sweep finds its runs;
Hydra computes it inside each job (``hydra.sweep.subdir``), the sweep command before launching.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from vaesweep.errors import printable

#: Settings the sweep driver adds per launcher (one line per finished run instead of bars,
#: cores shared between parallel runs): they never name a run unless swept, so the name the
#: driver plans from the user's overrides is the name each job computes from its own.
UNNAMED_KEYS = ("train.progress", "train.threads")


def run_name(task_overrides: Sequence[str], swept_keys: Sequence[str]) -> str:
    """A run's directory name: its swept ``key=value`` pairs, sorted by key.

    With nothing swept, every override names it but Hydra's own and :data:`UNNAMED_KEYS`
    (``default`` when none is left). The same overrides always give the same name, which is
    how a resumed sweep finds its runs. The sweep command plans the names with this function
    (:meth:`vaesweep.bridge.grid.Grid.names`) and Hydra evaluates it in each job through
    ``${vaesweep.run_name:...}`` in ``hydra.sweep.subdir``: this is the only place a run's
    name is made.
    """
    pairs = []
    wanted = {k.lstrip("+~") for k in swept_keys}
    for o in task_overrides:
        key, _, value = o.partition("=")
        bare = key.lstrip("+~")
        if bare.startswith("hydra") or (wanted and bare not in wanted):
            continue
        if not wanted and bare in UNNAMED_KEYS:
            continue
        pairs.append((bare, value))
    name = ",".join(f"{k}={v}" for k, v in sorted(pairs)) or "default"
    # Bytes that are not UTF-8 (a data.path from the file system) read as their \xNN escapes,
    # so two such paths get two names, before anything unsafe in a name becomes "_".
    name = re.sub(r"[^\w.,=+\-\[\]()@]", "_", printable(name))
    if len(name) > MAX_NAME:
        # Whole key=value pairs only (a pair cut mid-key reads as a different setting), then a
        # digest of the full name keeps names unique.
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        kept = ""
        for pair in name.split(","):
            if len(kept) + len(pair) + 1 > MAX_NAME - len(digest) - 1:
                break
            kept = f"{kept},{pair}" if kept else pair
        name = f"{kept},{digest}" if kept else f"{name[: MAX_NAME - 11]}_{digest}"
    return name


#: Longest run directory name (well under the 255 bytes of common file systems).
MAX_NAME = 150
