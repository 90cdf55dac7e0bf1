"""Benchmark: an 8-value beta sweep with ``--jobs 2`` against the same runs one after another.

Both arms run the real CLI in fresh processes on the default config and data, alternating so
machine noise hits both alike; figures are medians over the repeats. Printed:

* the two wall times and their ratio (target: ``--jobs 2`` at least 1.8x faster on 2 cores);
* the per-run overhead of each arm (target: under 10% of the run time): the run's wall time
  minus its training (``summary.json["timings"]["train_s"]``, per-epoch validation included)
  and its final evaluation, plus its share of the sweep's time outside any run (process and
  Hydra start, the launcher, the index and tables);
* the thread-scaling ceiling: ``2 x train_s(2 threads) / train_s(1 thread)`` of one default
  run, the speed-up two single-thread runs side by side reach over one two-thread run when
  nothing else costs anything. Parallel runs cannot beat it, however small the overhead.

Usage: ``python bench/bench_sweep.py [--repeats N] [--epochs E]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BETAS = "0.001,0.003,0.01,0.03,0.1,0.3,1,3"
TARGET_SPEEDUP = 1.8
TARGET_OVERHEAD = 0.10


def _vaesweep(root: Path, args: list[str]) -> float:
    cmd = [sys.executable, "-m", "vaesweep", *args]
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=root, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_sweep(root: Path, name: str, extra: list[str], epochs: int | None) -> float:
    args = ["sweep", f"beta={BETAS}", "--name", name, *extra]
    return _vaesweep(root, args + ([f"train.epochs={epochs}"] if epochs else []))


def train_seconds(root: Path, threads: int, epochs: int | None) -> float:
    """``train_s`` of one default run (beta=0.1) with ``threads`` torch threads."""
    name = f"threads{threads}_{time.monotonic_ns()}"
    args = ["train", "beta=0.1", f"train.threads={threads}", "train.progress=off", "--name", name]
    _vaesweep(root, args + ([f"train.epochs={epochs}"] if epochs else []))
    (run_dir,) = (root / "runs").glob(f"*_{name}")
    return float(json.loads((run_dir / "summary.json").read_text())["timings"]["train_s"])


def run_records(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        names = [r["run"] for r in csv.DictReader(f)]
    return [json.loads((sweep_dir / n / "summary.json").read_text()) for n in names]


def overheads(wall: float, records: list[dict], parallel: int) -> list[dict[str, float]]:
    """Per run: its time, its overhead and the parts of it (seconds)."""
    in_runs = sum(r["wall_time_s"] for r in records)
    # Sweep time not covered by any run (start-up, launcher, index, tables), shared out.
    outside = max(0.0, wall * parallel - in_runs) / len(records)
    out = []
    for r in records:
        t = r["timings"]
        run_time = r["wall_time_s"] + outside
        overhead = run_time - t["train_s"] - t["final_s"]
        out.append(
            {
                "run": run_time,
                "overhead": overhead,
                "fraction": overhead / run_time,
                "outside": outside,
                "in_run": overhead - outside - t["setup_s"] - t["record_s"],
                "setup": t["setup_s"],
                "record": t["record_s"],
                "train": t["train_s"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    args = parser.parse_args()

    times: dict[str, list[float]] = {"seq": [], "par": []}
    rows: dict[str, list[dict[str, float]]] = {"seq": [], "par": []}
    train_1t: list[float] = []
    train_2t: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            for arm, extra in (("seq", []), ("par", ["--jobs", "2"])):
                name = f"{arm}{i}"
                wall = run_sweep(root, name, extra, args.epochs)
                times[arm].append(wall)
                records = run_records(root / "sweeps" / name)
                rows[arm] += overheads(wall, records, 2 if arm == "par" else 1)
            train_2t.append(train_seconds(root, 2, args.epochs))
            train_1t.append(train_seconds(root, 1, args.epochs))

    seq, par = statistics.median(times["seq"]), statistics.median(times["par"])
    speedup = seq / par
    t1, t2 = statistics.median(train_1t), statistics.median(train_2t)
    print(f"8-run beta sweep on digits (default config), median of {args.repeats} alternating")
    print(f"  sequential, one process, torch default threads : {seq:7.2f} s")
    print(f"  --jobs 2 (joblib, cores/2 threads per run)     : {par:7.2f} s")
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"  speed-up {speedup:.2f}x ({verdict} the {TARGET_SPEEDUP}x target)")
    print(
        f"  thread-scaling ceiling 2 x {t2:.2f} s / {t1:.2f} s = {2 * t2 / t1:.2f}x "
        f"(one run's training with 2 threads / with 1: {t1 / t2:.2f}x)"
    )
    for arm in ("seq", "par"):
        med = {k: statistics.median(r[k] for r in rows[arm]) for k in rows[arm][0]}
        verdict = "meets" if med["fraction"] < TARGET_OVERHEAD else "MISSES"
        print(
            f"  per-run overhead ({arm}): {med['overhead']:.2f} s of {med['run']:.2f} s = "
            f"{med['fraction']:.1%} ({verdict} the {TARGET_OVERHEAD:.0%} target) "
            f"[outside runs {med['outside']:.2f} s, data+model {med['setup']:.2f} s, "
            f"record {med['record']:.2f} s, rest of the run {med['in_run']:.2f} s; "
            f"training {med['train']:.2f} s]"
        )


if __name__ == "__main__":
    main()
