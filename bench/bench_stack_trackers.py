"""Benchmark: what each experiment tracker costs a stacked sweep of 8 β values.

Arms: ``vaesweep sweep beta=0.001,...,3`` (8 values, one stack) on the default config and data
with ``tracker=none``, ``tracker=tensorboard``, ``tracker=mlflow`` (the default SQLite store,
written directly: the sweep's parent run and one child run per member) and the same through
MLflow's client (``tracker.mlflow.writer=client``), each in a fresh process as a user runs
it; the arms alternate so machine noise hits them alike, and figures are medians over the
repeats. Printed per tracker: the extra wall time of the command over ``tracker=none`` as a
share of it, the part of it inside the stack (the members' ``summary.json["wall_time_s"]``:
the trackers' threads, the grids they are sent, waiting for them at the end), and the extra
CPU time (user + system) of the command, which other processes on a shared machine disturb far
less than wall time. ``--extra`` adds overrides to every arm (default: none; the default
validation draws stack).

Usage: ``python bench/bench_stack_trackers.py [--repeats N] [--epochs E] [--arms a,b]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = {
    "none": "tracker=none",
    "tensorboard": "tracker=tensorboard",
    "mlflow": "tracker=mlflow",
    "mlflow_client": "tracker=mlflow tracker.mlflow.writer=client",
    "both": "tracker=[tensorboard,mlflow]",
}
BETAS = "0.001,0.003,0.01,0.03,0.1,0.3,1,3"
EXTRA = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(root: Path, arm: str, epochs: int | None, extra: list[str]) -> tuple[float, float, float]:
    """(wall time, CPU time of the command, the stack's own wall time) of one 8-β sweep."""
    name = f"{arm}_{time.monotonic_ns()}"
    args = ["sweep", f"beta={BETAS}", *ARMS[arm].split(), "train.progress=off", *extra]
    args += ["--name", name]
    args += [f"train.epochs={epochs}"] if epochs else []
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    t0, cpu0 = time.perf_counter(), _children_cpu()
    subprocess.run(
        [sys.executable, "-m", "vaesweep", *args],
        check=True,
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    summaries = [json.loads(p.read_text()) for p in (root / "sweeps" / name).glob("*/summary.json")]
    assert len(summaries) == 8 and all(s["status"] == "completed" for s in summaries)
    assert all(len(s.get("stack") or []) == 8 for s in summaries), "the sweep did not stack"
    return wall, cpu, max(float(s["wall_time_s"]) for s in summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--arms", default="none,tensorboard,mlflow", help="of: " + ",".join(ARMS))
    parser.add_argument("--extra", default=EXTRA, help="overrides added to every arm")
    args = parser.parse_args()
    arms = ["none", *[a for a in args.arms.split(",") if a != "none"]]
    extra = args.extra.split()

    walls: dict[str, list[float]] = {arm: [] for arm in arms}
    cpus: dict[str, list[float]] = {arm: [] for arm in arms}
    inside: dict[str, list[float]] = {arm: [] for arm in arms}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sweep(root, arms[-1], 1, extra)  # warm-up: creates the MLflow store, fills the caches
        for _ in range(args.repeats):
            for arm in arms:
                wall, cpu, in_stack = sweep(root, arm, args.epochs, extra)
                walls[arm].append(wall)
                cpus[arm].append(cpu)
                inside[arm].append(in_stack)

    base, base_in = statistics.median(walls["none"]), statistics.median(inside["none"])
    base_cpu = statistics.median(cpus["none"])
    print(
        f"tracker overhead on a stacked sweep of 8 betas ({' '.join(extra)}), median of "
        f"{args.repeats} alternating"
    )
    print(f"  tracker=none: {base:.2f} s (the stack itself {base_in:.2f} s), CPU {base_cpu:.2f} s")
    for arm in arms[1:]:
        wall, in_stack = statistics.median(walls[arm]), statistics.median(inside[arm])
        extra_s = wall - base
        print(
            f"  {ARMS[arm]:<29}: {wall:.2f} s, +{extra_s:.2f} s = {extra_s / base:+.1%} "
            f"[in the stack {in_stack - base_in:+.2f} s, outside it "
            f"{extra_s - (in_stack - base_in):+.2f} s]; CPU "
            f"{statistics.median(cpus[arm]) / base_cpu - 1:+.1%}"
        )
    print(
        f"  (load average: {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
