"""Which code made a record: the clone's commit and whether its tracked files differed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaesweep.record.provenance import (
    COMMIT_KEY,
    MODIFIED_KEY,
    base_versions,
    source_revision,
)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    source_revision.cache_clear()
    yield
    source_revision.cache_clear()


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "model.py").write_text("beta = 1\n")
    _git(repo, "add", "model.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return repo


def test_a_clean_clone_names_its_commit(clone: Path) -> None:
    assert source_revision(clone) == {
        COMMIT_KEY: _git(clone, "rev-parse", "HEAD"),
        MODIFIED_KEY: False,
    }


def test_a_changed_tracked_file_marks_the_source_modified(clone: Path) -> None:
    (clone / "notes.txt").write_text("untracked files do not count\n")
    assert source_revision(clone)[MODIFIED_KEY] is False
    source_revision.cache_clear()
    (clone / "model.py").write_text("beta = 0.1\n")
    assert source_revision(clone)[MODIFIED_KEY] is True


def test_no_clone_or_a_broken_one_keeps_nothing(tmp_path: Path) -> None:
    assert source_revision(tmp_path) == {}
    (tmp_path / ".git").write_text("gitdir: /nowhere\n")  # git fails there
    source_revision.cache_clear()
    assert source_revision(tmp_path) == {}


def test_the_versions_of_this_package_name_its_clone() -> None:
    versions = base_versions()
    assert {"vaesweep", "python", "platform"} <= set(versions)
    clone = Path(__file__).resolve().parents[1]
    if (clone / ".git").exists():
        assert versions[COMMIT_KEY] == _git(clone, "rev-parse", "HEAD")
    else:  # an unpacked source tree: nothing to name
        assert COMMIT_KEY not in versions
