"""Where results live: the outputs root and its two folders, for the commands that write and
those that read them.

``outputs/`` under the working directory unless ``--outputs`` or ``$VAESWEEP_OUTPUTS`` says
otherwise; single runs go to ``<root>/runs/<run>``, sweeps to ``<root>/sweeps/<sweep>/<run>``.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from vaesweep.errors import UserError

#: Folder of single runs (``vaesweep train``) under the outputs root.
RUNS_DIR = "runs"
#: Folder of sweeps (``vaesweep sweep``) under the outputs root.
SWEEPS_DIR = "sweeps"
#: ``tracker=mlflow``'s default store under the outputs root, and its artifacts' folder.
MLFLOW_STORE = "mlflow.db"
MLFLOW_ARTIFACTS_DIR = "mlartifacts"


#: The environment variable that moves the outputs root.
OUTPUTS_ENV = "VAESWEEP_OUTPUTS"

#: Folder, inside a sweep, of the Hydra jobs of its stacks (their .hydra/ and the whole
#: stack's train.log); each member's record is in its own run directory as usual.
STACKS_DIR = ".stacks"


def outputs_root(outputs: Path | None = None) -> Path:
    return Path(outputs or os.environ.get(OUTPUTS_ENV, "outputs")).expanduser()


def writable_root(outputs: Path | None = None) -> Path:
    """The outputs root, checked before a command writes there (:class:`UserError` if not).

    The message names where the root came from (``--outputs``, ``$VAESWEEP_OUTPUTS`` or the
    default ``./outputs``), so the user knows what to change.
    """
    root = outputs_root(outputs)
    origin = (
        f"--outputs {outputs}"
        if outputs
        else (f"{OUTPUTS_ENV}={os.environ[OUTPUTS_ENV]}" if os.environ.get(OUTPUTS_ENV) else "")
    )
    where = f"{origin} ({root})" if origin else f"the outputs folder {root}"
    # The nearest part of the path that exists decides: a file there, or no write permission.
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(
            f"{where} cannot hold results: {probe} is a file, not a folder; "
            "choose a folder with --outputs or VAESWEEP_OUTPUTS"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(
            f"{where} is not writable ({probe}: permission denied); "
            "choose a folder you can write with --outputs or VAESWEEP_OUTPUTS"
        )
    return root


def writable_dir(path: Path, what: str) -> Path:
    """An existing folder a command is about to write into (``what`` names it in the error)."""
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable (permission denied); nothing was changed")
    return path


#: A folder name's limit where the file system does not say (most do: ext4, xfs, APFS...).
NAME_MAX_FALLBACK = 255


def name_max(directory: Path) -> int:
    """The longest folder name, in bytes, the file system of ``directory`` (or of the nearest
    folder above it that exists) accepts."""
    probe = Path(directory)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no limit said
        return NAME_MAX_FALLBACK


def one_component(
    name: str, option: str = "--name", *, parent: Path | None = None, added: str = ""
) -> str:
    """A name a user typed, as one path component that stays under the outputs root.

    Refused with one line: path separators, ``.``/``..``, absolute paths, control characters,
    the empty name, and, with ``parent`` (the folder it goes into), a name too long for that
    folder's file system once the command adds ``added`` (``train``'s time stamp) to it; the
    OS would refuse it only after the launch had started.
    """
    bad = (
        "is empty"
        if not name.strip()
        else "contains a path separator"
        if "/" in name or (os.altsep and os.altsep in name) or "\\" in name
        else "is not a folder name"
        if name in (".", "..")
        else "contains a control character"
        if any(unicodedata.category(c).startswith("C") for c in name)
        # Hydra would resolve "${...}" in the run's folder (hydra.run.dir): ${oc.env:X} could
        # lead anywhere.
        else "contains '${', which Hydra would resolve into another path"
        if "${" in name
        else ""
    )
    if bad:
        raise UserError(
            f"{option} {name!r} {bad}; a name is one folder name (letters, digits, "
            "'-', '_', '=', ',', '.'), kept under the outputs folder"
        )
    if parent is not None:
        limit = name_max(parent) - len(added.encode())
        size = len(name.encode())
        if size > limit:
            extra = f", {len(added.encode())} of them kept for the time stamp" if added else ""
            raise UserError(
                f"{option} is {size} bytes long; at most {limit} fit (a folder name in "
                f"{parent} holds {name_max(parent)} bytes{extra}); choose a shorter name"
            )
    return name


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
