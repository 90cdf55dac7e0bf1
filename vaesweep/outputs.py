"""Where results live: one rule shared by the commands that write and those that read them.

``outputs/`` under the working directory unless ``--outputs`` or ``$VAESWEEP_OUTPUTS`` says
otherwise; single runs go to ``<root>/runs``, sweeps to ``<root>/sweeps``.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS = "runs"
SWEEPS = "sweeps"


def outputs_root(outputs: Path | None = None) -> Path:
    return Path(outputs or os.environ.get("VAESWEEP_OUTPUTS", "outputs")).expanduser()
