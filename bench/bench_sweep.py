"""Benchmark: an 8-value beta sweep with ``--jobs 2`` against the same runs one after another.

Both arms run the real CLI in fresh processes on the default config and data, alternating so
machine noise hits both alike; the figure is the median ratio. It also breaks one run's wall
time down (from ``summary.json["timings"]``) into training and overhead: process and Hydra
start, data load and model build, writing the record, final evaluation.

Targets (issue "vaesweep sweep"): speed-up >= 1.8x on 2 cores; per-run overhead < 10% of the
run time. Usage: ``python bench/bench_sweep.py [--repeats N] [--epochs E]``.
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


def run_sweep(root: Path, name: str, extra: list[str], epochs: int | None) -> float:
    cmd = [sys.executable, "-m", "vaesweep", "sweep", f"beta={BETAS}", "--name", name, *extra]
    if epochs is not None:
        cmd.append(f"train.epochs={epochs}")
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=root, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_records(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        names = [r["run"] for r in csv.DictReader(f)]
    return [json.loads((sweep_dir / n / "summary.json").read_text()) for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    args = parser.parse_args()

    seq_times, par_times, overheads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            seq_times.append(run_sweep(root, f"seq{i}", [], args.epochs))
            par_times.append(run_sweep(root, f"par{i}", ["--jobs", "2"], args.epochs))
            for name, wall in ((f"seq{i}", seq_times[-1]), (f"par{i}", par_times[-1])):
                records = run_records(root / "sweeps" / name)
                in_runs = sum(r["wall_time_s"] for r in records)
                parallel = 2 if name.startswith("par") else 1
                # Driver share: sweep wall time not covered by the runs' own wall time.
                driver = max(0.0, wall * parallel - in_runs) / len(records)
                for r in records:
                    t = r["timings"]
                    run_time = r["wall_time_s"] + driver
                    overhead = run_time - t["train_s"] - t["final_s"]
                    overheads.append((name[:3], overhead / run_time, overhead, run_time, t, driver))

    seq, par = statistics.median(seq_times), statistics.median(par_times)
    speedup = seq / par
    print(f"8-run beta sweep on digits (default config), median of {args.repeats} alternating")
    print(f"  sequential, one process, torch default threads : {seq:7.2f} s")
    print(f"  --jobs 2 (joblib, cores/2 threads per run)     : {par:7.2f} s")
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"  speed-up {speedup:.2f}x ({verdict} the {TARGET_SPEEDUP}x target)")
    for arm in ("seq", "par"):
        rows = [o for o in overheads if o[0] == arm]
        frac = statistics.median(o[1] for o in rows)
        sec = statistics.median(o[2] for o in rows)
        run = statistics.median(o[3] for o in rows)
        setup = statistics.median(o[4]["setup_s"] for o in rows)
        record = statistics.median(o[4]["record_s"] for o in rows)
        driver = statistics.median(o[5] for o in rows)
        verdict = "meets" if frac < TARGET_OVERHEAD else "MISSES"
        print(
            f"  per-run overhead ({arm}): {sec:.2f} s of {run:.2f} s = {frac:.1%} "
            f"[process+Hydra {driver:.2f} s, data+model {setup:.2f} s, record {record:.2f} s] "
            f"({verdict} the {TARGET_OVERHEAD:.0%} target)"
        )


if __name__ == "__main__":
    main()
