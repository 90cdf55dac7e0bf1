"""The report's convergence numbers: a fall is a share of where the window started, and one
verdict per run serves the tables and the reading (exploratory tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.testing.fabricate import fabricate_run


def test_a_record_with_the_old_fall_is_measured_again_from_its_metrics(tmp_path: Path) -> None:
    """Records written before ``relative_to`` divided the fall by the end value."""
    run = tmp_path / "beta=0.1"
    fabricate_run(run, beta=0.1, epochs=10, images=False, converged=False, rel_change=0.3346)
    summary = json.loads((run / "summary.json").read_text())
    del summary["convergence"]["relative_to"]
    (run / "summary.json").write_text(json.dumps(summary))
    rows = [
        ln.split(",") for ln in (run / "metrics.csv").read_text().splitlines()[1:] if ",val," in ln
    ]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    loss = {int(r[header.index("step")]): float(r[header.index("loss")]) for r in rows}
    start, end = loss[9 * 26], loss[10 * 26]
    t = build_sweep(load([run])).table
    assert t["last10_change"].iloc[0] == pytest.approx((start - end) / start)


def test_a_current_record_is_read_as_written(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "r", beta=0.1, images=False, converged=False, rel_change=0.25)
    t = build_sweep(load([tmp_path / "r"])).table
    assert t["last10_change"].iloc[0] == pytest.approx(0.25)


def _reading(*roots: Path) -> str:
    from vaesweep.report.reading.build import build_reading

    return build_reading(build_sweep(load(list(roots)))).text()


def test_a_moving_beta_t_is_not_converged_in_the_tables_or_the_reading(tmp_path: Path) -> None:
    """A cyclical run read "converged: yes (-6.6%)" in the tables while the reading said its
    β_t changed by 225%: one verdict serves both."""
    from vaesweep.report.render.tables import runs_table, settings_table

    root = tmp_path / "kl"
    fabricate_run(root / "constant", beta=0.1, epochs=10, images=False, converged=True)
    fabricate_run(
        root / "geco",
        beta=0.1,
        method="geco",
        epochs=10,
        images=False,
        converged=True,
        rel_change=-0.066,
    )
    sweep = build_sweep(load([root]))
    runs = runs_table(sweep).set_index("run")
    assert runs.loc["geco", "converged"] == "no (β_t still moving)"
    assert runs.loc["constant", "converged"] == "yes"
    settings = settings_table(sweep).set_index("setting")
    assert settings.loc["geco", "converged"] == "no"
    text = _reading(root)
    assert "for geco the objective had settled but β_t still moved" in text
    assert "β does not matter" not in text  # one β: methods, not βs, are compared


def test_the_range_quoted_is_the_runs_own_falls(tmp_path: Path) -> None:
    """Group means (5.0%–27.4%) were quoted next to a table of runs showing 3.3%–33.5%."""
    root = tmp_path / "s"
    for seed, fall in ((0, 0.335), (1, 0.033)):
        fabricate_run(
            root / f"beta=0.01,seed={seed}",
            beta=0.01,
            seed=seed,
            images=False,
            converged=False,
            rel_change=fall,
        )
    fabricate_run(root / "beta=1,seed=0", beta=1.0, images=False, converged=False, rel_change=0.05)
    assert "fell by 3.3%–33.5% (per run) over the last 10% of the 130 steps" in _reading(root)


def test_train_longer_names_the_key_and_length_each_setting_used(tmp_path: Path) -> None:
    """ "train.steps=N" is useless when train.epochs was set (it wins); with two sweeps in one
    report, each setting gets four times its own length."""
    short, long = tmp_path / "short", tmp_path / "long"
    fabricate_run(short / "r", beta=0.01, epochs=3, images=False, converged=False)
    fabricate_run(long / "r", beta=1.0, epochs=40, images=False, converged=False)
    text = _reading(short, long)
    assert "train.epochs=12 for β=0.01, epochs=3; train.epochs=160 for β=1, epochs=40" in text
    assert "train.steps" not in text
    assert "their 78–1040 steps" in text


def test_runs_too_short_to_judge_say_so_first(tmp_path: Path) -> None:
    """One-epoch runs validate only at their end: convergence cannot be read, and the reading
    must say so before comparing them (it used to compare them as if they had converged)."""
    from vaesweep.evaluation.convergence import convergence
    from vaesweep.report.reading.build import build_reading

    root = tmp_path / "short"
    for beta in (0.01, 1.0):
        run = root / f"beta={beta:g}"
        fabricate_run(run, beta=beta, epochs=1, images=False, converged=True)
        summary = json.loads((run / "summary.json").read_text())
        # What the trainer records for one validation at the end: no point before the window.
        summary["convergence"] = convergence([(26, 50.0)], 26)
        assert summary["convergence"]["converged"] is None
        (run / "summary.json").write_text(json.dumps(summary))
    reading = build_reading(build_sweep(load([root])))
    assert reading.title.startswith("Too early to judge: ")
    lead = reading.answer[0]
    assert lead.startswith("Whether these runs converged cannot be judged: they trained for 26")
    assert "(1 epoch)" in lead and "train.epochs=4" in lead
    # Records that predate the verdict are not called too short.
    for run in root.iterdir():
        summary = json.loads((run / "summary.json").read_text())
        del summary["convergence"]
        (run / "summary.json").write_text(json.dumps(summary))
    assert "cannot be judged" not in build_reading(build_sweep(load([root]))).text()
