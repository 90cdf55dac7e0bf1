"""Which code made a record: the versions every run and sweep keep in ``versions``.

Besides the package versions, a record made by vaesweep running from a git clone (``make
install`` installs it editable) keeps the clone's commit and whether its tracked files differed
from that commit, so a result can be traced to the code that produced it after the clone has
moved on. Nothing is kept where vaesweep is installed from a wheel or git cannot answer.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import vaesweep
from vaesweep import __version__

#: Keys of ``versions`` that name the source: the commit, and whether tracked files differed.
COMMIT_KEY, MODIFIED_KEY = "git_commit", "git_modified"


def base_versions() -> dict[str, str | bool]:
    """vaesweep's and Python's versions, the platform, and :func:`source_revision`."""
    return {
        "vaesweep": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        **source_revision(),
    }


@functools.cache
def source_revision(root: Path | None = None) -> dict[str, str | bool]:
    """``{"git_commit": sha, "git_modified": bool}`` of the clone vaesweep runs from (``root``:
    the folder holding the package, by default this one's), or ``{}`` when it is not the top of
    a git work tree (an installed wheel) or git fails.

    Read once per process: the code that runs is the code imported at its start.
    """
    top = Path(root) if root is not None else Path(vaesweep.__file__).resolve().parent.parent
    if not (top / ".git").exists():  # not a site-packages folder inside someone's repository
        return {}
    head = _git(top, "rev-parse", "--verify", "HEAD")
    status = _git(top, "status", "--porcelain", "--untracked-files=no")
    if head is None or status is None:
        return {}
    return {COMMIT_KEY: head.strip(), MODIFIED_KEY: bool(status.strip())}


def _git(top: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(top), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,  # a hung network filesystem must not hold a run up
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
