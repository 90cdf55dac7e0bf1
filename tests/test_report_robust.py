"""Partial, crashed and damaged sweeps; bad directories; where the default report comes from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.errors import UserError
from vaesweep.report.build import build_report
from vaesweep.report.data.load import default_dir, load, read_metrics
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep

#: Each test renders whole reports (every figure): seconds each, so not in `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.01/0.1/1 x 2 seeds: one diverged, one truncated CSV, one failed, one never started."""
    root = tmp_path_factory.mktemp("robust") / "partial"
    fabricate_sweep(
        root,
        [0.01, 0.1, 1.0],
        [0, 1],
        statuses={
            "beta=1,seed=1": "diverged",
            "beta=0.1,seed=1": "failed",
            "beta=0.01,seed=1": "pending",
        },
    )
    csv = root / "beta=0.1,seed=0" / "metrics.csv"
    text = csv.read_bytes()
    csv.write_bytes(text[:-40])  # cut in the middle of the last line
    build_report([root])
    return root


def test_partial_sweep_reports_every_run(partial: Path) -> None:
    summary = pd.read_csv(partial / "report" / "summary.csv").set_index("run")
    assert summary["status"].to_dict() == {
        "beta=0.01,seed=0": "completed",
        "beta=0.01,seed=1": "pending",
        "beta=0.1,seed=0": "completed",
        "beta=0.1,seed=1": "failed",
        "beta=1,seed=0": "completed",
        "beta=1,seed=1": "diverged",
    }
    assert summary["usable"].sum() == 3
    assert "loss became nan at epoch 2" in summary.loc["beta=1,seed=1", "error"]
    assert "truncated" in summary.loc["beta=0.1,seed=0", "problems"]


def test_left_out_runs_are_listed_with_their_reason(partial: Path) -> None:
    page = (partial / "report" / "index.html").read_text()
    for name, reason in (
        ("beta=1,seed=1", "loss became nan at epoch 2"),
        ("beta=0.1,seed=1", "no such dataset"),
        ("beta=0.01,seed=1", "not started"),
    ):
        assert name in page
        assert reason in page
    assert "truncated (its last line is incomplete)" in page


def test_diverged_run_is_left_out_of_final_value_figures(partial: Path) -> None:
    seeds = pd.read_csv(partial / "report" / "seeds.csv", index_col="group")
    assert seeds.loc["β=1", "n_seeds"] == 1 and seeds.loc["β=1", "n_runs"] == 2
    assert seeds.loc["β=0.1", "n_seeds"] == 1


def test_truncated_csv_keeps_its_complete_rows(partial: Path, tmp_path: Path) -> None:
    df, problems = read_metrics(partial / "beta=0.1,seed=0" / "metrics.csv")
    assert df is not None
    assert len(df) == 9  # 5 epochs x 2 splits, the last line lost
    assert any("truncated" in p for p in problems)
    # A line with the wrong number of fields anywhere is dropped too.
    lines = (partial / "beta=0.01,seed=0" / "metrics.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 5)[0]
    bad = tmp_path / "metrics.csv"
    bad.write_text("\n".join(lines) + "\n")
    df, problems = read_metrics(bad)
    assert df is not None and len(df) == 9 and 3 not in df.index[df["epoch"] == 2].tolist()
    assert any("malformed line" in p for p in problems)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"not,a,metrics\n1,2,3\n", "malformed (no epoch, split column)"),
        (b"\xff\xfe\x00garbage", "unreadable"),
        (b"epoch,step,split,kl\n", "no complete rows"),
    ],
)
def test_malformed_csv_is_reported_and_skipped(
    tmp_path: Path, content: bytes, message: str
) -> None:
    fabricate_run(tmp_path / "runs" / "good", beta=0.1, images=False)
    fabricate_run(tmp_path / "runs" / "bad", beta=1.0, images=False)
    (tmp_path / "runs" / "bad" / "metrics.csv").write_bytes(content)
    loaded = load([tmp_path / "runs"])
    bad = next(r for r in loaded.runs if r.name == "bad")
    assert bad.metrics is None
    assert any(message in p for p in bad.problems), bad.problems
    path = build_report([tmp_path / "runs"])
    summary = pd.read_csv(path.parent / "summary.csv").set_index("run")
    # The summary still has the run's final values, so it stays in the comparison.
    assert summary.loc["bad", "usable"]
    assert message in path.read_text()


def test_killed_run_counts_the_epochs_in_its_csv(tmp_path: Path) -> None:
    """summary.json's progress fields lag metrics.csv by up to a few seconds in a killed run."""
    fabricate_run(tmp_path / "runs" / "good", beta=0.1, images=False)
    fabricate_run(tmp_path / "runs" / "killed", beta=1.0, epochs=6, status="running")
    summary_path = tmp_path / "runs" / "killed" / "summary.json"
    stale = {**json.loads(summary_path.read_text()), "epochs_done": 1}
    summary_path.write_text(json.dumps(stale))
    path = build_report([tmp_path / "runs"])
    summary = pd.read_csv(path.parent / "summary.csv").set_index("run")
    assert summary.loc["killed", "epochs_done"] == 3  # the rows metrics.csv holds
    assert summary.loc["good", "epochs_done"] == 5


def test_unreadable_summary_is_reported(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "runs" / "good", beta=0.1, images=False)
    fabricate_run(tmp_path / "runs" / "bad", beta=1.0, images=False)
    (tmp_path / "runs" / "bad" / "summary.json").write_text('{"status": "compl')
    path = build_report([tmp_path / "runs"])
    summary = pd.read_csv(path.parent / "summary.csv").set_index("run")
    assert summary.loc["bad", "status"] == "unknown"
    assert not summary.loc["bad", "usable"]
    assert "summary.json is unreadable" in path.read_text()


def test_crashed_sweep_without_plan(tmp_path: Path) -> None:
    root = tmp_path / "crashed"
    fabricate_run(root / "beta=0.1", beta=0.1, images=False)
    fabricate_run(root / "beta=1", beta=1.0, status="running", epochs=6, images=False)
    (root / "notes").mkdir()  # not a run: ignored
    path = build_report([root])
    summary = pd.read_csv(path.parent / "summary.csv").set_index("run")
    assert summary["status"].to_dict() == {"beta=0.1": "completed", "beta=1": "running"}
    assert summary.loc["beta=1", "epochs_done"] == 3
    # Not left out: compared at its latest epoch, and said to be provisional.
    assert summary["partial"].to_dict() == {"beta=0.1": False, "beta=1": True}
    assert bool(summary.loc["beta=1", "usable"])
    page = path.read_text()
    assert "1 of 2 runs has not finished (β=1, epochs=6): it is compared at its latest " in page
    assert "validation epoch (epoch 3 of 6), so its numbers are provisional" in page


def test_no_usable_run_still_gives_a_report(tmp_path: Path) -> None:
    root = tmp_path / "all-failed"
    fabricate_sweep(
        root, [0.1, 1.0], statuses={"beta=0.1": "diverged", "beta=1": "failed"}, images=False
    )
    page = build_report([root]).read_text()
    assert "None of the 2 runs finished with final values" in page


@pytest.mark.parametrize("kind", ["missing", "empty", "file", "no-runs"])
def test_wrong_directory_is_one_clear_error(tmp_path: Path, kind: str) -> None:
    target = tmp_path / kind
    if kind == "empty":
        target.mkdir()
    elif kind == "file":
        target.write_text("x")
    elif kind == "no-runs":
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "readme.txt").write_text("x")
    with pytest.raises(UserError) as err:
        build_report([target])
    assert "\n" not in str(err.value)
    assert str(target) in str(err.value)


def test_a_folder_of_sweeps_names_one(tmp_path: Path) -> None:
    fabricate_sweep(tmp_path / "outputs" / "sweeps" / "one", [1.0], images=False)
    for folder in (tmp_path / "outputs", tmp_path / "outputs" / "sweeps"):
        with pytest.raises(UserError, match=r"holds sweeps, not runs; pass one of them, e\.g\. "):
            build_report([folder])


def test_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "holds no runs" in text
    assert len(text.splitlines()) <= 2  # one message (rich may wrap a long path once)


def test_bad_format_is_a_user_error(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "run", beta=1.0, images=False)
    with pytest.raises(UserError, match="--format 'pdf'"):
        build_report([tmp_path / "run"], fmt="pdf")


def test_default_is_the_newest_sweep(outputs: Path) -> None:
    with pytest.raises(UserError, match="no sweep or run under"):
        default_dir(None)
    fabricate_run(outputs / "runs" / "2026-01-01_a", beta=1.0, images=False)
    assert default_dir(None) == outputs / "runs" / "2026-01-01_a"
    old = outputs / "sweeps" / "old"
    new = outputs / "sweeps" / "new"
    fabricate_sweep(new, [0.1], images=False)
    fabricate_sweep(old, [1.0], images=False)
    os.utime(new / "sweep.json", (2_000_000_000, 2_000_000_000))
    assert default_dir(None) == new
    # Writing a report into the older sweep must not make it the newest.
    build_report([old])
    assert default_dir(None) == new
    path = build_report([])
    assert path == new / "report" / "index.html"


def test_several_dirs_one_report(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    fabricate_sweep(a, [0.1, 1.0], images=False)
    fabricate_sweep(b, [0.1, 1.0], images=False, latent_dim=4)
    single = tmp_path / "single"
    fabricate_run(single, beta=0.5, images=False)
    out = tmp_path / "cmp"
    path = build_report([a, b, single], out=out)
    assert path == out / "index.html"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["run"]) == ["A/beta=0.1", "A/beta=1", "B/beta=0.1", "B/beta=1", "single"]
    assert "model.latent_dim" in summary.columns  # what differs between the sweeps
    # Without --out the report goes into the first DIR.
    assert build_report([a, b]) == a / "report" / "index.html"


def test_run_record_with_non_finite_values(tmp_path: Path) -> None:
    run = tmp_path / "r"
    fabricate_run(run, beta=1.0, images=False)
    s = json.loads((run / "summary.json").read_text())
    s["final"]["val"]["kl"] = None  # JSON has no NaN: the writer stores null
    s["iwae"] = None
    (run / "summary.json").write_text(json.dumps(s))
    (run / "metrics.csv").unlink()
    path = build_report([run])
    summary = pd.read_csv(path.parent / "summary.csv")
    assert not summary["usable"].iloc[0]
    assert "no finite final rate" in path.read_text()


@pytest.mark.slow
def test_a_swept_path_that_is_not_utf8_is_labelled_escaped(tmp_path: Path) -> None:
    """sweep.json keeps a swept data.path's bytes that are not UTF-8 (as lone surrogates):
    the report's table of runs raised UnicodeEncodeError (pyarrow) on them."""
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    plan = json.loads((root / "sweep.json").read_text())
    for run in plan["runs"]:
        run["values"]["data.path"] = os.fsdecode(b"/data/caf\xe9")
    plan["swept_keys"].append("data.path")
    (root / "sweep.json").write_text(json.dumps(plan))
    build_report([root])
    page = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "/data/caf\\xe9" in page


def test_a_count_no_integer_type_holds_is_kept_as_a_number(tmp_path: Path) -> None:
    """A seed of 1e23 (accepted before seeds were capped at 2**63) or an epoch of 1e20 in a
    damaged metrics.csv took the whole report down (casting to Int64)."""
    fabricate_run(tmp_path / "runs" / "good", beta=0.1, images=False)
    fabricate_run(tmp_path / "runs" / "odd", beta=1.0, images=False)
    summary_path = tmp_path / "runs" / "odd" / "summary.json"
    summary_path.write_text(json.dumps({**json.loads(summary_path.read_text()), "seed": 1e23}))
    summary = pd.read_csv(build_report([tmp_path / "runs"]).parent / "summary.csv")
    assert summary.set_index("run").loc["odd", "seed"] == pytest.approx(1e23)
