"""Benchmark: what each experiment tracker costs a default run.

Arms: ``vaesweep train beta=0.1`` on the default config and data with ``tracker=none``,
``tracker=tensorboard``, ``tracker=mlflow`` (the default SQLite store, which the warm-up run
creates, so it is written directly), the same through MLflow's client
(``tracker.mlflow.writer=client``) and both trackers, each in a
fresh process as a user runs it; the arms alternate so machine noise hits them alike, and
figures are medians over the repeats. ``tracker=none`` runs twice in every repeat, and its
second slot is printed like a tracker: the difference two identical arms show is what this
host can resolve. Printed per tracker: the extra wall time of the command over
``tracker=none`` as a share of it (target: under 5%); the same, pair by pair within each
repeat (median, middle half, and how many pairs were slower); the part of it inside the run
(``summary.json["wall_time_s"]``: the tracker's thread and the grids it is sent), the rest
being outside it (the command's check before training, the wait for the tracker to finish
logging after it); the fastest run of the arm against the fastest without a tracker (a busy
host only ever adds time, so this is the less noisy figure); then the extra CPU time (user +
system) of the command and its child processes (MLflow logs from one). Last, MLflow's floor:
what importing it and opening the store costs a process of its own, the part of the tracker
the client path cannot remove (it runs beside the run); the direct writer has none.

Usage: ``python bench/bench_trackers.py [--repeats N] [--epochs E] [--arms none,mlflow]``.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARMS = {
    "none": "tracker=none",
    # The same command as "none", in its own slot of every repeat: what two arms that differ in
    # nothing measure apart on this host, the resolution of every other line.
    "none_again": "tracker=none",
    "tensorboard": "tracker=tensorboard",
    "mlflow": "tracker=mlflow",
    # The same store through MLflow's client, in a child process: how MLflow was logged before
    # the direct writer (and how any store that is not a local SQLite one still is).
    "mlflow_client": "tracker=mlflow tracker.mlflow.writer=client",
    "both": "tracker=[tensorboard,mlflow]",
}
TARGET_OVERHEAD = 0.05


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: ``python -m vaesweep`` that also leaves the CPU time of its own process (its threads, not
#: its child processes) in the file named by $VAESWEEP_BENCH_RUSAGE.
_COMMAND = """
import atexit, json, os, resource, runpy, sys
def _own_cpu():
    me = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["VAESWEEP_BENCH_RUSAGE"], "w") as f:
        json.dump(me.ru_utime + me.ru_stime, f)
atexit.register(_own_cpu)
sys.argv = ["vaesweep", *sys.argv[1:]]
runpy.run_module("vaesweep", run_name="__main__", alter_sys=True)
"""


@dataclass
class Sample:
    wall: float  #: the command's wall time
    cpu: float  #: CPU time of the command and its child processes
    own_cpu: float  #: CPU time of the command's own process (the training process)
    in_run: float  #: the run's own wall_time_s


def train(root: Path, arm: str, epochs: int | None, extra: Sequence[str] = ()) -> Sample:
    """One default run of ``arm``, as a user types it (plus the overrides ``extra``)."""
    name = f"{arm}_{time.monotonic_ns()}"
    args = ["train", "beta=0.1", *ARMS[arm].split(), "train.progress=off", *extra, "--name", name]
    args += [f"train.epochs={epochs}"] if epochs else []
    rusage = root / f"{name}.cpu.json"
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root), "VAESWEEP_BENCH_RUSAGE": str(rusage)}
    t0, cpu0 = time.perf_counter(), _children_cpu()
    subprocess.run(
        [sys.executable, "-c", _COMMAND, *args],
        check=True,
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    (run_dir,) = (root / "runs").glob(f"*_{name}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed", summary.get("error")
    own = float(json.loads(rusage.read_text()))
    return Sample(wall, cpu, own, float(summary["wall_time_s"]))


def mlflow_floor(root: Path) -> tuple[float, float]:
    """(wall, CPU) of the MLflow tracker's process alone, less a bare interpreter's: it starts,
    imports MLflow (as it does it: :data:`vaesweep.tracking.worker.HIDDEN`), opens the existing
    store, finds its input closed and exits."""
    spec = json.dumps(
        {
            "tracker": "mlflow",
            "config": {"writer": "client"},
            "uri_hint": f"sqlite:///{root / 'mlflow.db'}",
        }
    )
    out = []
    for args in (["-c", "pass"], ["-m", "vaesweep.tracking.worker", spec]):
        t0, cpu0 = time.perf_counter(), _children_cpu()
        subprocess.run([sys.executable, *args], check=True, stdin=subprocess.DEVNULL)
        out.append((time.perf_counter() - t0, _children_cpu() - cpu0))
    return out[1][0] - out[0][0], out[1][1] - out[0][1]


def direct_cost(root: Path) -> tuple[float, int]:
    """(CPU s, values) of the direct MLflow writer replaying a finished default run's record in
    this process as the run sends it: the epochs of each :attr:`MlflowTracker.min_interval_s`
    (by their ``seconds`` column) in one batch, the grids every 5 epochs and at the end, the
    artifacts. Measured with the thread's own CPU clock: what the tracker's thread takes
    from training."""
    import numpy as np
    import yaml

    from vaesweep.config.tracker import MlflowConfig
    from vaesweep.record.files import read_metrics_csv
    from vaesweep.tracking.base import RunInfo, scalars
    from vaesweep.tracking.mlflow import MlflowTracker

    run_dir = next(p for p in sorted((root / "runs").glob("*_none_*")) if p.is_dir())
    rows = read_metrics_csv(run_dir / "metrics.csv")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    replay = root / "replay"
    replay.mkdir(exist_ok=True)
    for name in ("config.yaml", "summary.json", "reconstructions.png", "samples.png"):
        if (run_dir / name).exists():
            (replay / name).write_bytes((run_dir / name).read_bytes())
    info = RunInfo(replay, "replay", config, {"beta": 0.1}, outputs_root=root)
    grid = np.zeros((8 * 34, 8 * 34, 3), np.uint8)  # a default run's 8 x 8 grid of 32 px digits
    tracker = MlflowTracker(MlflowConfig(), direct_only=True)
    start = time.thread_time()
    tracker.on_start(info)
    epochs = sorted({int(r["epoch"]) for r in rows})
    batch: list[dict[str, Any]] = []
    waited = 0.0
    for epoch in epochs:
        mine = [r for r in rows if int(r["epoch"]) == epoch]
        batch += mine
        waited += max(float(r.get("seconds") or 0.0) for r in mine)
        last = epoch == epochs[-1]
        if waited >= tracker.min_interval_s or last:
            tracker.on_epoch(batch)
            batch, waited = [], 0.0
        if epoch % 5 == 0 or last:
            step = max(int(r["step"]) for r in mine)
            tracker.on_images(epoch, step, {"reconstructions": grid, "samples": grid})
    tracker.on_end("completed", json.loads((run_dir / "summary.json").read_text()))
    values = sum(1 for r in rows for _ in scalars(r))
    return time.thread_time() - start, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)  # a noisy host: 3 were not enough
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated; none is kept")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for every arm, e.g. train.threads=1: one torch thread does not spin "
        "on a loaded machine, so the training process's CPU time then shows what a tracker "
        "adds to it",
    )
    args = parser.parse_args()
    chosen = [a for a in args.arms.split(",") if a in ARMS and a not in ("none", "none_again")]
    arms = ["none", "none_again", *chosen]

    samples: dict[str, list[Sample]] = {arm: [] for arm in arms}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train(root, "both", 1)  # warm-up: creates the MLflow store, fills the OS caches
        for i in range(args.repeats):
            # Each repeat starts with another arm: a fixed order would give each arm the same
            # neighbour (the previous arm's exiting processes, the caches it left) every time.
            for arm in arms[i % len(arms) :] + arms[: i % len(arms)]:
                samples[arm].append(train(root, arm, args.epochs, args.set))
        floor = [mlflow_floor(root) for _ in range(args.repeats)]
        direct = [direct_cost(root) for _ in range(3)]
    load = os.getloadavg()[0]

    def median(arm: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples[arm])

    base, base_in = median("none", "wall"), median("none", "in_run")
    base_cpu, base_own = median("none", "cpu"), median("none", "own_cpu")
    epochs = f"train.epochs={args.epochs}" if args.epochs else "the default length"
    epochs = " ".join([epochs, *args.set])
    print(
        f"tracker overhead on one run (vaesweep train beta=0.1, {epochs}), median of "
        f"{args.repeats} alternating"
    )
    print(
        f"  tracker=none: {base:.2f} s (the run itself {base_in:.2f} s), CPU {base_cpu:.2f} s "
        f"(the training process {base_own:.2f} s)"
    )
    best_base = min(s.wall for s in samples["none"])
    for arm in arms[1:]:
        wall, in_run = median(arm, "wall"), median(arm, "in_run")
        cpu, own = median(arm, "cpu"), median(arm, "own_cpu")
        extra = wall - base
        best = min(s.wall for s in samples[arm]) - best_base
        verdict = "meets" if extra / base < TARGET_OVERHEAD else "MISSES"
        verdict += f" the {TARGET_OVERHEAD:.0%} target"
        if arm == "none_again":
            verdict = "no tracker: the noise floor"
        # Each repeat's pair, arm against none in the same repeat.
        pairs = [a.wall / b.wall - 1 for a, b in zip(samples[arm], samples["none"])]
        q1, q2, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
        slower = sum(d > 0 for d in pairs)
        label = "tracker=none, again" if arm == "none_again" else ARMS[arm]
        print(
            f"  {label:<29}: {wall:.2f} s, {extra:+.2f} s = {extra / base:+.1%} "
            f"({verdict}); in pairs of one repeat: median {q2:+.1%}, middle half {q1:+.1%} to "
            f"{q3:+.1%}, slower in {slower} of {len(pairs)} [in the run {in_run - base_in:+.2f} s, "
            f"outside it {extra - (in_run - base_in):+.2f} s]; fastest against fastest "
            f"{best:+.2f} s = {best / best_base:+.1%}; CPU {cpu / base_cpu - 1:+.1%} "
            f"(the training process {own - base_own:+.2f} s, its child processes "
            f"{(cpu - own) - (base_cpu - base_own):+.2f} s)"
        )
    floor_wall = statistics.median(f[0] for f in floor)
    floor_cpu = statistics.median(f[1] for f in floor)
    print(
        f"  MLflow's floor (its process alone: import, open the store, exit): {floor_wall:.2f} s, "
        f"CPU {floor_cpu:.2f} s = {floor_cpu / base_cpu:+.1%} of the run's CPU"
    )
    direct_cpu = statistics.median(d[0] for d in direct)
    print(
        f"  the direct MLflow writer's own CPU for a default run's record ({direct[0][1]} values, "
        f"a batch per 2 s of epochs, the grids, the artifacts), in its thread: {direct_cpu:.3f} s = "
        f"{direct_cpu / base_cpu:+.1%} of the run's CPU"
    )
    print(
        f"  (load average {load_start:.1f} at the start, {load:.1f} at the end, on "
        f"{os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
