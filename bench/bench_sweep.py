"""Benchmark: an 8-value beta sweep as one stack, with ``--jobs 2``, and one run after another.

The three arms run the real CLI in fresh processes on the default config and data,
alternating so machine noise hits them alike; figures are medians over the repeats. Printed:

* the wall times and their ratios: the stack against the sequential loop (target 2x on 2
  cores) and against ``--jobs 2`` (target 1.3x); ``--jobs 2`` against the loop (target 1.8x);
* the stack's per-member overhead (target: under 10% of its wall time): the stack job's time
  besides training (``timings.train_s``, per-epoch validation included), i.e. data and
  models, record writing and every member's end-of-run outputs; and the whole overhead,
  with the sweep's start-up (process, imports, Hydra), which a sweep pays once;
* peak memory (max RSS) of the stacked sweep against one default run;
* the per-run overhead of each arm (target: under 10% of the run time): the run's wall time
  minus its training (``summary.json["timings"]["train_s"]``, per-epoch validation included)
  and its final evaluation, plus its share of the sweep's time outside any run (process and
  Hydra start, the launcher, the index and tables);
* the thread-scaling ceiling: ``2 x train_s(2 threads) / train_s(1 thread)`` of one default
  run, the speed-up two single-thread runs side by side reach over one two-thread run when
  nothing else costs anything. Parallel runs cannot beat it, however small the overhead.

``--data fashion`` runs the same sweep on Fashion-MNIST (``data=fashion_mnist
data.limit=10000 train.epochs=5``, the conv default; target: the stack at least 1.3x the
sequential loop), where each step has more arithmetic per member than on 8x8 digits.

Usage: ``python bench/bench_sweep.py [--repeats N] [--epochs E] [--data digits|fashion]``.
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
TARGET_STACK = 2.0
TARGET_STACK_VS_JOBS = 1.3
TARGET_OVERHEAD = 0.10
#: ``--data`` -> the overrides of every arm (and the stack-vs-loop target).
DATA = {
    "digits": ([], TARGET_STACK),
    "fashion": (["data=fashion_mnist", "data.limit=10000", "train.epochs=5"], 1.3),
}
#: Set from ``--data`` in :func:`main`.
EXTRA: list[str] = []
#: Runs the command and prints its peak RSS (KiB on Linux) as its last line.
_PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
#: Peak RSS (MiB) of the last command of each kind.
PEAKS: dict[str, float] = {}


def _vaesweep(root: Path, args: list[str]) -> float:
    cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "vaesweep", *args]
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, env=env, cwd=root, capture_output=True, text=True)
    PEAKS[args[0] + (" --no-stack" if "--no-stack" in args else "")] = (
        int(out.stdout.split()[-1]) / 1024
    )
    return time.perf_counter() - t0


def run_sweep(root: Path, name: str, extra: list[str], epochs: int | None) -> float:
    args = ["sweep", f"beta={BETAS}", "--name", name, *EXTRA, *extra]
    return _vaesweep(root, args + ([f"train.epochs={epochs}"] if epochs else []))


def train_seconds(root: Path, threads: int, epochs: int | None) -> float:
    """``train_s`` of one default run (beta=0.1) with ``threads`` torch threads."""
    name = f"threads{threads}_{time.monotonic_ns()}"
    args = ["train", "beta=0.1", *EXTRA, f"train.threads={threads}", "train.progress=off"]
    args += ["--name", name]
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


def stack_overhead(wall: float, records: list[dict]) -> dict[str, float]:
    """The stacked sweep's time outside its training (seconds, and as fractions of its wall).

    ``in_job``: what the stack's job spends besides training: data and models (``setup_s``),
    the members' records (``record_s``, summed) and their end-of-run outputs (the rest of the
    job's ``wall_time_s``; members' outputs run in parallel threads, so their ``final_s``
    do not add up to it). ``startup``: the sweep's time outside the job (process start,
    imports, Hydra's compositions, the index and tables), paid once per sweep.
    """
    t = records[0]["timings"]
    job = records[0]["wall_time_s"]
    # On a CPU the stack trains as parts side by side: the longest part's training.
    train = max(r["timings"]["train_s"] for r in records)
    record = sum(r["timings"]["record_s"] for r in records)
    final = job - t["setup_s"] - train - record
    overhead = wall - train
    in_job = job - train
    return {
        "wall": wall,
        "overhead": overhead,
        "fraction": overhead / wall,
        "in_job": in_job,
        "in_job_fraction": in_job / wall,
        # What stacking itself adds: the end-of-run evaluation is the same work in every run.
        "besides_final": in_job - final,
        "besides_final_fraction": (in_job - final) / wall,
        "final": final,
        "record": record,
        "setup": t["setup_s"],
        "startup": wall - job,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--data", choices=sorted(DATA), default="digits")
    args = parser.parse_args()
    EXTRA[:] = DATA[args.data][0]
    target_stack = DATA[args.data][1]

    times: dict[str, list[float]] = {"seq": [], "par": [], "stack": []}
    rows: dict[str, list[dict[str, float]]] = {"seq": [], "par": []}
    stack_parts: list[dict[str, float]] = []
    peaks: dict[str, list[float]] = {"stack": [], "one run": []}
    train_1t: list[float] = []
    train_2t: list[float] = []
    arms = (("seq", ["--no-stack"]), ("par", ["--no-stack", "--jobs", "2"]), ("stack", []))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            for arm, extra in arms:
                name = f"{arm}{i}"
                wall = run_sweep(root, name, extra, args.epochs)
                times[arm].append(wall)
                # One line per arm as it ends: 3 repeats take about 10 minutes on digits.
                print(f"  repeat {i + 1}, {arm}: {wall:.2f} s", file=sys.stderr, flush=True)
                records = run_records(root / "sweeps" / name)
                if arm == "stack":
                    stack_parts.append(stack_overhead(wall, records))
                    peaks["stack"].append(PEAKS["sweep"])
                else:
                    rows[arm] += overheads(wall, records, 2 if arm == "par" else 1)
            train_2t.append(train_seconds(root, 2, args.epochs))
            peaks["one run"].append(PEAKS["train"])
            train_1t.append(train_seconds(root, 1, args.epochs))

    seq, par = statistics.median(times["seq"]), statistics.median(times["par"])
    stack = statistics.median(times["stack"])
    speedup = seq / par
    t1, t2 = statistics.median(train_1t), statistics.median(train_2t)
    setting = " ".join(EXTRA) or "default config"
    print(f"8-run beta sweep on {args.data} ({setting}), median of {args.repeats} alternating")
    print(f"  sequential, one process, torch default threads : {seq:7.2f} s")
    print(f"  --jobs 2 (joblib, cores/2 threads per run)     : {par:7.2f} s")
    print(f"  one stack of 8 (the default)                   : {stack:7.2f} s")
    for label, ratio, target in (
        ("stack vs sequential", seq / stack, target_stack),
        ("stack vs --jobs 2", par / stack, TARGET_STACK_VS_JOBS),
        ("--jobs 2 vs sequential", speedup, TARGET_SPEEDUP),
    ):
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"  {label}: {ratio:.2f}x ({verdict} the {target}x target)")
    med = {k: statistics.median(r[k] for r in stack_parts) for k in stack_parts[0]}
    verdict = "meets" if med["in_job_fraction"] < TARGET_OVERHEAD else "MISSES"
    print(
        f"  stack per-member overhead: {med['in_job']:.2f} s of {med['wall']:.2f} s = "
        f"{med['in_job_fraction']:.1%} ({verdict} the {TARGET_OVERHEAD:.0%} target) "
        f"[members' end-of-run outputs {med['final']:.2f} s, records {med['record']:.2f} s, "
        f"data+models {med['setup']:.2f} s]"
    )
    print(
        f"  stack per-member overhead besides the end-of-run evaluation (IWAE and grids, which "
        f"each single run also computes): {med['besides_final']:.2f} s = "
        f"{med['besides_final_fraction']:.1%}"
    )
    print(
        f"  stack overhead with the sweep's start-up: {med['overhead']:.2f} s = "
        f"{med['fraction']:.1%} [start-up, Hydra, index and tables {med['startup']:.2f} s, "
        "once per sweep]"
    )
    p_stack, p_one = statistics.median(peaks["stack"]), statistics.median(peaks["one run"])
    print(
        f"  peak memory (max RSS): stack of 8 {p_stack:.0f} MiB, one run {p_one:.0f} MiB "
        f"({p_stack / p_one:.2f}x)"
    )
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
