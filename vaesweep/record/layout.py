"""Where results live: the outputs root and its two folders, for the commands that write and
those that read them.

``outputs/`` under the working directory unless ``--outputs`` or ``$VAESWEEP_OUTPUTS`` says
otherwise; single runs go to ``<root>/runs/<run>``, sweeps to ``<root>/sweeps/<sweep>/<run>``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Folder of single runs (``vaesweep train``) under the outputs root.
RUNS_DIR = "runs"
#: Folder of sweeps (``vaesweep sweep``) under the outputs root.
SWEEPS_DIR = "sweeps"
#: Folder, inside a sweep, of the Hydra jobs of its stacks (their .hydra/ and the whole
#: stack's train.log); each member's record is in its own run directory as usual.
STACKS_DIR = ".stacks"


def outputs_root(outputs: Path | None = None) -> Path:
    return Path(outputs or os.environ.get("VAESWEEP_OUTPUTS", "outputs")).expanduser()


def runs_dir(outputs: Path | None = None) -> Path:
    """``<root>/runs``: where ``vaesweep train`` puts each run."""
    return outputs_root(outputs) / RUNS_DIR


def sweeps_dir(outputs: Path | None = None) -> Path:
    """``<root>/sweeps``: where ``vaesweep sweep`` puts each sweep."""
    return outputs_root(outputs) / SWEEPS_DIR
