"""RunRecord's per-epoch writes: atomic, cheap (no fsync until flush), and resumable."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch

from vaesweep.record import RunRecord


def _rows(epoch: int, extra: dict[str, float] | None = None):
    train = {"loss": 1.0 / epoch, "recon": 1.0, "kl": 0.5, **(extra or {})}
    return {"train": (train, [0.25, 0.25]), "val": ({"loss": 2.0 / epoch, "kl": 0.4}, [0.2, 0.2])}


def test_epochs_are_written_at_once_and_synced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    record = RunRecord(tmp_path)
    for epoch in (1, 2, 3):
        record.append_epoch(epoch, epoch * 10, 0.1, _rows(epoch))
        state = {"model": {"w": torch.full((3,), float(epoch))}, "control": {}, "step": epoch}
        record.save_checkpoint({"state": {**state, "epoch": epoch}}, background=True)
        # a reader sees every finished epoch immediately
        with open(record.metrics_path, newline="") as f:
            assert [int(r["epoch"]) for r in csv.DictReader(f)][-1] == epoch
    assert synced == []  # neither the CSV nor the checkpoint was fsynced per epoch
    record.flush()
    assert len(synced) == 1  # the CSV, once, at the end
    saved = record.load_checkpoint()
    assert saved is not None and saved["state"]["epoch"] == 3
    assert torch.equal(saved["state"]["model"]["w"], torch.full((3,), 3.0))


def test_a_new_column_relays_the_file_and_last_rows_follow(tmp_path: Path) -> None:
    record = RunRecord(tmp_path)
    record.append_epoch(1, 10, 0.1, _rows(1))
    record.append_epoch(2, 20, 0.1, _rows(2, {"geco_lambda": 3.0}))  # a method's first statistic
    with open(record.metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "1", "2", "2"]
    assert rows[0]["geco_lambda"] == "" and rows[2]["geco_lambda"] == "3.0"
    assert record.last["train"]["epoch"] == 2 and record.last["train"]["geco_lambda"] == 3.0
    assert "kl_dim_0" not in record.last["val"]
    # resuming after epoch 1 keeps only what the checkpoint has seen
    again = RunRecord(tmp_path)
    again.load_rows(1)
    assert [r["epoch"] for r in again.rows] == [1, 1] and again.last["val"]["epoch"] == 1
    again.append_epoch(2, 20, 0.1, _rows(2))
    with open(record.metrics_path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "1", "2", "2"]


def test_run_names_and_text_files_write_paths_that_are_not_utf8(tmp_path: Path) -> None:
    """A swept data.path with bytes that are not UTF-8 (lone surrogates in Python): both paths
    were named `data.path=__a_` (the sweep refused them as one name), and runs.csv, written
    from the same values, raised UnicodeEncodeError. Names now show the bytes as \\xNN."""
    from vaesweep.record.files import atomic_write_text
    from vaesweep.record.run_names import run_name

    one, two = (os.fsdecode(b"/a\xff"), os.fsdecode(b"/a\xfe"))
    names = [run_name([f"data.path='{p}'"], ["data.path"]) for p in (one, two)]
    assert names == ["data.path=__a_xff_", "data.path=__a_xfe_"]
    atomic_write_text(tmp_path / "runs.csv", f"run,data.path\n{names[0]},{one}\n")
    assert (tmp_path / "runs.csv").read_text(encoding="utf-8").endswith(",/a\\xff\n")


def _add_entries(run_dir: str, split: str, n: int, barrier) -> None:
    from vaesweep.record.evaluations import add_evaluation

    barrier.wait()
    for i in range(n):
        add_evaluation(Path(run_dir), {"split": split, "images": i, "iwae_samples": 10})


def test_concurrent_evaluations_of_one_run_all_keep_their_entries(tmp_path: Path) -> None:
    """Two ``vaesweep eval`` of one run writing eval.json at once: each read-update-write
    holds the run directory's lock, so no entry is lost (without it, 2 x 40 interleaved
    updates kept 40-44 of the 80 in three tries)."""
    import multiprocessing

    from vaesweep.record.evaluations import read_evaluations

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_add_entries, args=(str(tmp_path), split, 40, barrier))
        for split in ("val", "test")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(read_evaluations(tmp_path)) == 80
