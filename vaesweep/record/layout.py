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
#: ``tracker=mlflow``'s default store under the outputs root, and its artifacts' folder.
MLFLOW_STORE = "mlflow.db"
MLFLOW_ARTIFACTS_DIR = "mlartifacts"


def outputs_root(outputs: Path | None = None) -> Path:
    return Path(outputs or os.environ.get("VAESWEEP_OUTPUTS", "outputs")).expanduser()


def runs_dir(outputs: Path | None = None) -> Path:
    """``<root>/runs``: where ``vaesweep train`` puts each run."""
    return outputs_root(outputs) / RUNS_DIR


def sweeps_dir(outputs: Path | None = None) -> Path:
    """``<root>/sweeps``: where ``vaesweep sweep`` puts each sweep."""
    return outputs_root(outputs) / SWEEPS_DIR


def outputs_root_of(run_dir: Path, sweep_dir: Path | None = None) -> Path | None:
    """The outputs root a run directory lies in (``<root>/runs/<run>`` or
    ``<root>/sweeps/<sweep>/<run>``); None where the layout is not vaesweep's."""
    if sweep_dir is not None:
        return sweep_dir.parent.parent if sweep_dir.parent.name == SWEEPS_DIR else None
    return run_dir.parent.parent if run_dir.parent.name == RUNS_DIR else None
