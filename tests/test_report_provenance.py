"""The reading names the code that made the runs when it was not one clean commit."""

from __future__ import annotations

import json
from pathlib import Path

from vaesweep.record import contract
from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.reading.build import build_reading
from vaesweep.testing.fabricate import fabricate_run

A, B = "a1b2c3d" + "0" * 33, "4e5f6a7" + "1" * 33
SECTION = "The code that made the runs"


def _made_by(run_dir: Path, commit: str | None, modified: bool = False) -> None:
    path = run_dir / contract.SUMMARY_FILE
    summary = json.loads(path.read_text())
    versions = {"vaesweep": "0.1.0", "torch": "2.14.1"}
    if commit is not None:
        versions |= {"git_commit": commit, "git_modified": modified}
    path.write_text(json.dumps({**summary, "versions": versions}))


def _code_section(root: Path, made_by: dict[float, tuple[str | None, bool]]) -> list[str]:
    for beta, (commit, modified) in made_by.items():
        fabricate_run(root / f"b{beta}", beta=beta, images=False)
        _made_by(root / f"b{beta}", commit, modified)
    reading = build_reading(build_sweep(load([root])))
    return dict(reading.sections).get(SECTION, [])


def test_runs_of_one_clean_commit_need_no_word(tmp_path: Path) -> None:
    assert _code_section(tmp_path, {0.1: (A, False), 1.0: (A, False)}) == []


def test_records_that_name_no_commit_are_not_judged(tmp_path: Path) -> None:
    assert _code_section(tmp_path, {0.1: (None, False), 1.0: (None, False)}) == []


def test_runs_of_different_commits_are_named_with_their_runs(tmp_path: Path) -> None:
    (text,) = _code_section(tmp_path, {0.1: (A, False), 1.0: (B, True), 10.0: (None, False)})
    assert "different code" in text
    assert "commit a1b2c3d (1 run: b0.1)" in text
    assert "commit 4e5f6a7 with tracked files changed since it (1 run: b1.0)" in text
    assert "code the record does not name (1 run)" in text


def test_changed_files_under_one_commit_are_said(tmp_path: Path) -> None:
    (text,) = _code_section(tmp_path, {0.1: (A, True), 1.0: (A, True)})
    assert text.startswith("Every run was made by commit a1b2c3d with tracked files changed")
