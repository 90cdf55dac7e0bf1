"""Benchmark: what each experiment tracker costs a default run.

Arms: ``vaesweep train beta=0.1`` on the default config and data with ``tracker=none``,
``tracker=tensorboard``, ``tracker=mlflow`` (the default SQLite store) and both, each in a
fresh process as a user runs it; the arms alternate so machine noise hits them alike, and
figures are medians over the repeats. Printed per tracker: the extra wall time of the command
over ``tracker=none`` as a share of it (target: under 5%), and the part of it inside the run
(``summary.json["wall_time_s"]``: the tracker's thread and the grids it is sent), the rest
being the command's check of the tracker before training (package, MLflow store); then the
extra CPU time (user + system) of the command, which other processes on a shared machine
disturb far less than wall time.

Usage: ``python bench/bench_trackers.py [--repeats N] [--epochs E]``.
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
    "both": "tracker=[tensorboard,mlflow]",
}
TARGET_OVERHEAD = 0.05


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(root: Path, arm: str, epochs: int | None) -> tuple[float, float, float]:
    """(wall time, CPU time of the command, the run's own wall_time_s) of one default run."""
    name = f"{arm}_{time.monotonic_ns()}"
    args = ["train", "beta=0.1", ARMS[arm], "train.progress=off", "--name", name]
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
    (run_dir,) = (root / "runs").glob(f"*_{name}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed", summary.get("error")
    return wall, cpu, float(summary["wall_time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    args = parser.parse_args()

    walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpus: dict[str, list[float]] = {arm: [] for arm in ARMS}
    inside: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train(root, "both", 1)  # warm-up: creates the MLflow store, fills the OS caches
        for _ in range(args.repeats):
            for arm in ARMS:
                wall, cpu, in_run = train(root, arm, args.epochs)
                walls[arm].append(wall)
                cpus[arm].append(cpu)
                inside[arm].append(in_run)

    base, base_in = statistics.median(walls["none"]), statistics.median(inside["none"])
    base_cpu = statistics.median(cpus["none"])
    print(
        f"tracker overhead on one default run (vaesweep train beta=0.1), median of "
        f"{args.repeats} alternating"
    )
    load = os.getloadavg()[0]
    print(f"  tracker=none: {base:.2f} s (the run itself {base_in:.2f} s), CPU {base_cpu:.2f} s")
    for arm in list(ARMS)[1:]:
        wall, in_run = statistics.median(walls[arm]), statistics.median(inside[arm])
        extra = wall - base
        verdict = "meets" if extra / base < TARGET_OVERHEAD else "MISSES"
        print(
            f"  {ARMS[arm]:<29}: {wall:.2f} s, +{extra:.2f} s = {extra / base:+.1%} "
            f"({verdict} the {TARGET_OVERHEAD:.0%} target) [in the run {in_run - base_in:+.2f} s, "
            f"before it {extra - (in_run - base_in):+.2f} s]; CPU "
            f"{statistics.median(cpus[arm]) / base_cpu - 1:+.1%}"
        )
    print(f"  (load average at the end: {load:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
