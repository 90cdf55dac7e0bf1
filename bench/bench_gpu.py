"""GPU figures for stacked sweeps: wall time, throughput, host syncs, precision, equivalence.

    python bench/bench_gpu.py [--device cuda] [--epochs 5] [--budget 420] [--json FILE]

`make bench` runs it where a CUDA GPU is visible (elsewhere it says so and skips).

Each section runs the real CLI (or the real trainers) on one GPU and prints what it measured;
a section is skipped when less than its estimate is left of ``--budget`` seconds, so a short
lease still gives the first sections. Sections, in order:

1. ``smoke``: a default digits run on the device, then ``vaesweep eval`` of it.
2. ``sweep16``: a 16-value beta sweep on Fashion-MNIST (60,000 images, conv default) for
   ``--epochs`` epochs: one run, the sweep at the default ``--stack-size`` (one stack of 16
   on a GPU) and as two stacks of 8, one after the other. Prints each wall time
   against the one run's (target: the 16-run sweep within 2x of one run) and the training
   images per second of a stack against one run (all members' images counted).
3. ``syncs``: short trainings (stacked and single, each feedback KL controller, bf16 and fp16)
   under ``torch.cuda.set_sync_debug_mode("warn")``; every call that makes the host wait for
   the GPU is counted by the vaesweep line that made it, against the optimiser steps trained.
   A site that fires about once per step is a per-step synchronisation (a defect).
4. ``precision``: one run and a 16-member stack for 2 epochs in fp32, bf16 and fp16 (fp16
   never stacks): training images per second and the final validation loss.
5. ``overheads``: process and CUDA start, and one run's phases (``summary.json``'s
   ``timings``) with ``train.deterministic`` on and off.
6. ``scaling``: one epoch of K stacked members (K = 1 .. 64) through the real stacked
   trainer, data on the device: ms per step of the stack, images per second, and K single
   steps' time over the stack's.
7. ``equivalence``: a 3-member stack against the 3 single runs after one epoch on the device:
   the largest relative difference of any metric.
8. ``resume``: a 4-member stack killed mid-run, then ``sweep --resume``: every member
   completes, each epoch recorded once.

On a CPU (``--device cpu``) the sections run on tiny data, to check the script itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BETAS16 = ",".join(f"{10 ** (i / 4 - 3):.4g}" for i in range(16))  # 1e-3 .. 5.6
#: Runs ``vaesweep.cli.main`` with argv[2:], counting every host synchronisation that
#: ``torch.cuda.set_sync_debug_mode("warn")`` reports, by the innermost vaesweep line
#: (and the innermost line overall), into the JSON file argv[1].
_SYNC_HARNESS = r"""
import collections, json, sys, traceback, warnings
import torch
counts = collections.Counter()
def show(message, category, filename, lineno, file=None, line=None):
    if "synchroniz" not in str(message):
        return
    frames = traceback.extract_stack()[:-1]
    ours = [f for f in frames if "/vaesweep/" in f.filename and "/bench/" not in f.filename]
    site = f"{ours[-1].filename.split('/vaesweep/')[-1]}:{ours[-1].lineno} {ours[-1].name}" if ours else "?"
    counts[f"{site} <- {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}"] += 1
warnings.showwarning = show
warnings.simplefilter("always")
def probe():  # one known synchronisation: proves that the counting works
    n = sum(counts.values())
    if torch.cuda.is_available():
        torch.ones(1, device="cuda").item()
    return sum(counts.values()) - n
if torch.cuda.is_available():
    torch.cuda.set_sync_debug_mode("warn")
before = probe()
from vaesweep.cli import main
target, sys.argv = sys.argv[1], ["vaesweep", *sys.argv[2:]]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
after = probe()
json.dump({"code": code, "sites": dict(counts), "probe": [before, after]}, open(target, "w"))
sys.exit(code)
"""

RESULTS: dict[str, object] = {}
DEADLINE = 0.0
ARGS: argparse.Namespace


def section(estimate_s: float) -> Callable[[Callable[[], dict]], Callable[[], None]]:
    """Run the function if ``estimate_s`` is left of the budget; print and keep its result."""

    def wrap(fn: Callable[[], dict]) -> Callable[[], None]:
        def run() -> None:
            left = DEADLINE - time.monotonic()
            if left < estimate_s:
                print(f"== {fn.__name__}: skipped ({left:.0f} s left, needs ~{estimate_s:.0f})")
                RESULTS[fn.__name__] = {"skipped": f"{left:.0f} s left"}
                return
            print(f"== {fn.__name__}", flush=True)
            t0 = time.monotonic()
            try:
                out = fn()
            except Exception as err:  # a failed section must not cost the others
                out = {"error": f"{type(err).__name__}: {err}"}
                print(f"   FAILED: {out['error']}", flush=True)
            out["section_s"] = round(time.monotonic() - t0, 1)
            RESULTS[fn.__name__] = out
            print(f"   ({out['section_s']} s)", flush=True)
            if ARGS.json:
                Path(ARGS.json).write_text(json.dumps(RESULTS, indent=1, default=str))

        run.__name__ = fn.__name__
        return run

    return wrap


def vaesweep(root: Path, *args: str, harness: Path | None = None) -> float:
    """Run the CLI in a fresh process with outputs under ``root``; its wall time in seconds."""
    pre = ["-c", _SYNC_HARNESS, str(harness)] if harness else ["-m", "vaesweep"]
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *pre, *args], env=env, cwd=root, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"exit {out.returncode}: {' '.join(args)}\n{out.stderr[-3000:]}")
    return wall


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def train_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["split"] == "train"]


def throughput(root: Path) -> float:
    """Training images per second of everything under ``root`` that trained together: the
    members' images over the stack's epoch time (median over epochs after the first)."""
    dirs = [p.parent for p in root.rglob("metrics.csv")]
    by_stack: dict[str, list[Path]] = {}
    for d in dirs:
        s = json.loads((d / "summary.json").read_text())
        by_stack.setdefault(",".join(s.get("stack") or [d.name]), []).append(d)
    rates = []
    for members in by_stack.values():
        rows = train_rows(members[0])
        secs = [float(r["seconds"]) for r in rows[1:]] or [float(rows[0]["seconds"])]
        n = float(rows[0]["images_per_sec"]) * float(rows[0]["seconds"])
        rates.append(len(members) * n / statistics.median(secs))
    return statistics.mean(rates)


def timings(runs: list[dict]) -> dict[str, float]:
    """The largest of each ``summary.json["timings"]`` entry over ``runs`` (seconds)."""
    keys = {k for r in runs for k, v in r["timings"].items() if isinstance(v, (int, float))}
    return {k: round(max(float(r["timings"].get(k) or 0) for r in runs), 2) for k in sorted(keys)}


def fashion(limit: int | None = None) -> list[str]:
    if ARGS.device == "cpu":
        limit = min(limit or 1000, 1000)
    return [
        "data=fashion_mnist",
        f"data.root={ARGS.data_root}",
        f"train.device={ARGS.device}",
        "train.progress=off",
        *([f"data.limit={limit}"] if limit else []),
    ]


def scratch(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ARGS.work))


@section(10)
def env() -> dict:
    import torch

    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": ARGS.device}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, sms=p.multi_processor_count, memory_gib=p.total_memory / 2**30)
    out["cpus"] = os.cpu_count()
    print(f"   {out}")
    return out


@section(30)
def smoke() -> dict:
    root = scratch("smoke")
    wall = vaesweep(root, "train", f"train.device={ARGS.device}", "train.epochs=2", "--name", "s")
    (s,) = summaries(root)
    run_dir = next(root.rglob("summary.json")).parent
    eval_wall = vaesweep(root, "eval", str(run_dir))
    evaluated = json.loads((run_dir / "eval.json").read_text())["evaluations"]
    out = {
        "status": s["status"],
        "device": s["device"],
        "wall_s": round(wall, 2),
        "timings": s["timings"],
        "eval_wall_s": round(eval_wall, 2),
        "eval_keys": list(evaluated),
    }
    print(f"   {out}")
    return out


@section(150)
def sweep16() -> dict:
    epochs = ARGS.epochs if ARGS.device != "cpu" else 1
    betas = BETAS16 if ARGS.device != "cpu" else "0.01,0.1,1"
    common = [*fashion(), f"train.epochs={epochs}"]
    arms: dict[str, dict] = {}
    for arm, args in (
        ("one run", ["train", "beta=0.1", *common]),
        ("default (one stack of 16 on a GPU)", ["sweep", f"beta={betas}", *common]),
        ("stacks of 8", ["sweep", f"beta={betas}", "--stack-size", "8", *common]),
    ):
        if DEADLINE - time.monotonic() < 40:
            print(f"   {arm}: skipped (time)")
            continue
        root = scratch("sweep16")
        wall = vaesweep(root, *args)
        runs = summaries(root)
        arms[arm] = {
            "wall_s": round(wall, 1),
            "runs": len(runs),
            "completed": sum(r["status"] == "completed" for r in runs),
            "train_s": round(max(r["timings"]["train_s"] for r in runs), 1),
            "timings": timings(runs),
            "images_per_s": round(throughput(root)),
            "val_loss_median": statistics.median(r["final"]["val"]["loss"] for r in runs),
        }
        print(f"   {arm}: {arms[arm]}", flush=True)
    one = arms.get("one run")
    if one:
        for arm, a in arms.items():
            a["wall_vs_one"] = round(a["wall_s"] / one["wall_s"], 2)
            a["throughput_vs_one"] = round(a["images_per_s"] / one["images_per_s"], 2)
            print(
                f"   {arm}: {a['wall_vs_one']}x the one run's wall time, "
                f"{a['throughput_vs_one']}x its training images/s"
            )
    return {"epochs": epochs, "betas": betas, "arms": arms}


@section(60)
def syncs() -> dict:
    cases = {
        "stack fp32 constant": ["sweep", "beta=0.1,1,4"],
        "stack bf16 geco": ["sweep", "beta=0.1,1", "kl=geco", "train.precision=bf16"],
        "stack fp32 pi": ["sweep", "beta=0.1,1", "kl=pi"],
        "single fp16 capacity": ["train", "kl=capacity", "train.precision=fp16"],
        "single fp32 constant, progress on": ["train", "train.progress=on"],
    }
    out = {}
    for case, args in cases.items():
        if DEADLINE - time.monotonic() < 15:
            print(f"   {case}: skipped (time)")
            continue
        root = scratch("syncs")
        harness = root / "syncs.json"
        extra = [a for a in fashion(20000) if not (case.endswith("on") and "progress" in a)]
        vaesweep(root, *args, *extra, "train.epochs=2", harness=harness)
        found = json.loads(harness.read_text())
        sites = found["sites"]
        steps = max(s["step"] for s in summaries(root))
        per_step = {k: v for k, v in sites.items() if v >= steps / 5}
        out[case] = {"steps": steps, "syncs": sum(sites.values()), "sites": sites}
        out[case]["probe"] = found["probe"]
        print(
            f"   {case}: probe {found['probe']}, {steps} steps, {sum(sites.values())} syncs at {len(sites)} sites; "
            f"sites at >= 1 per 5 steps: {per_step or 'none'}",
            flush=True,
        )
    return out


@section(60)
def precision() -> dict:
    epochs = 2 if ARGS.device != "cpu" else 1
    betas = BETAS16 if ARGS.device != "cpu" else "0.01,1"
    out: dict[str, dict] = {}
    for p in ("fp32", "bf16", "fp16"):
        for arm, args in (
            ("one run", ["train", "beta=0.1"]),
            ("stack of 16", ["sweep", f"beta={betas}", "--stack-size", "16"]),
        ):
            if p == "fp16" and arm != "one run":
                continue  # fp16 trains one run per process (its loss scale is per run)
            if DEADLINE - time.monotonic() < 25:
                continue
            root = scratch("precision")
            wall = vaesweep(
                root, *args, *fashion(), f"train.epochs={epochs}", f"train.precision={p}"
            )
            runs = summaries(root)
            key = f"{arm} {p}"
            out[key] = {
                "wall_s": round(wall, 1),
                "images_per_s": round(throughput(root)),
                "val_loss_median": round(
                    statistics.median(r["final"]["val"]["loss"] for r in runs), 3
                ),
            }
            print(f"   {key}: {out[key]}", flush=True)
    return out


@section(45)
def overheads() -> dict:
    """Where one run's time goes besides training: process start, CUDA's start, and the run's
    own phases, with ``train.deterministic`` on (the default) and off."""
    out: dict[str, object] = {}
    for what, code in (
        ("import vaesweep.cli", "import vaesweep.cli"),
        ("import torch", "import torch"),
        ("torch + first CUDA tensor", "import torch; torch.zeros(1, device='cuda').sum().item()"),
    ):
        if what.endswith("tensor") and ARGS.device == "cpu":
            continue
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        out[what] = round(time.perf_counter() - t0, 2)
    print(f"   process starts (s): {out}", flush=True)
    epochs = 2 if ARGS.device != "cpu" else 1
    for det in ("true", "false"):
        root = scratch("overheads")
        wall = vaesweep(
            root, "train", *fashion(), f"train.epochs={epochs}", f"train.deterministic={det}"
        )
        runs = summaries(root)
        out[f"deterministic={det}"] = {
            "wall_s": round(wall, 1),
            "timings": timings(runs),
            "images_per_s": round(throughput(root)),
        }
        print(f"   deterministic={det}: {out[f'deterministic={det}']}", flush=True)
    return out


@section(40)
def scaling() -> dict:
    import torch

    from vaesweep.config import Config, ConstantKL, ConvConfig, DataConfig, TrainConfig
    from vaesweep.run.stack_assembly import assemble_stack
    from vaesweep.training.stacked_trainer import StackedTrainer

    device = torch.device(ARGS.device)
    limit = 20000 if ARGS.device != "cpu" else 1000
    data = DataConfig(name="fashion_mnist", root=ARGS.data_root, limit=limit)
    out: dict[str, dict] = {}
    base = None
    for k in ARGS.k:
        if DEADLINE - time.monotonic() < 15:
            break
        configs = [
            Config(
                data=data,
                model=ConvConfig(),
                kl=ConstantKL(),
                train=TrainConfig(epochs=1, progress="off", device=ARGS.device),
                beta=10 ** (i % 16 / 4 - 3),
                seed=i,
            )
            for i in range(k)
        ]
        first, _ = assemble_stack(configs, device=device)
        train = first.splits.train.images.to(device)
        val = first.splits.val.images.to(device)
        times = []
        for _ in range(2):  # the first fit warms cuDNN's and the allocator's caches
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            state = assemble_stack(configs, device=device)[1]
            trainer = StackedTrainer(configs[0].train, configs[0].eval)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.fit(state, train, val)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        steps = -(-len(train) // configs[0].train.batch_size)
        t = times[-1]
        base = base or t / k  # seconds per member alone (K=1 first)
        out[str(k)] = {
            "epoch_s": round(t, 3),
            "ms_per_step": round(t / steps * 1e3, 2),
            "images_per_s": round(k * len(train) / t),
            "vs_k_single": round(k * base / t, 2),
        }
        if device.type == "cuda":
            out[str(k)]["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        print(f"   K={k}: {out[str(k)]}", flush=True)
    return out


@section(60)
def resume() -> dict:
    """A stacked sweep killed (SIGKILL) once every member has a checkpoint and two epochs, then
    ``sweep --resume``: every member must complete with each epoch recorded once."""
    root = scratch("resume")
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(root)}
    epochs = 6
    args = ["sweep", "beta=0.01,0.1,1,10", *fashion(20000), f"train.epochs={epochs}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaesweep", *args, "train.checkpoint_every_s=0", "--name", "r"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sweep = root / "sweeps" / "r"

    def epochs_done(run: Path) -> int:
        try:
            with (run / "metrics.csv").open() as f:
                return len({r["epoch"] for r in csv.DictReader(f)})
        except OSError:
            return 0

    def ready() -> bool:
        runs = [d for d in sweep.glob("beta=*") if d.is_dir()]
        return len(runs) == 4 and all(
            (d / "checkpoint.pt").exists() and epochs_done(d) >= 2 for d in runs
        )

    while not ready():
        if proc.poll() is not None:
            raise RuntimeError("the sweep ended before it could be killed")
        if DEADLINE - time.monotonic() < 20:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError("out of time before the kill")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = {d.name: epochs_done(d) for d in sweep.glob("beta=*")}
    wall = vaesweep(root, "sweep", "--resume", str(sweep))
    runs = summaries(sweep)
    counts = {}
    for d in sweep.glob("beta=*"):
        with (d / "metrics.csv").open() as f:
            rows = [(r["epoch"], r["split"]) for r in csv.DictReader(f)]
        counts[d.name] = len(rows) == len(set(rows)) == 2 * epochs
    out = {
        "epochs_at_kill": at_kill,
        "resume_wall_s": round(wall, 1),
        "completed": sum(r["status"] == "completed" for r in runs),
        "each_epoch_once": counts,
        "resumed_at": sorted({str(r.get("resumed")) for r in runs}),
    }
    print(f"   {out}", flush=True)
    return out


@section(30)
def equivalence() -> dict:
    common = [*fashion(3000), "train.epochs=1", "beta=0.01,0.1,1"]
    roots = {}
    for arm, extra in (("stack", []), ("single", ["--no-stack"])):
        roots[arm] = scratch("equiv")
        vaesweep(roots[arm], "sweep", *common, *extra)
    worst: dict[str, float] = {}
    for stacked in roots["stack"].rglob("metrics.csv"):
        s = json.loads((stacked.parent / "summary.json").read_text())
        twin = next(
            p
            for p in roots["single"].rglob("metrics.csv")
            if json.loads((p.parent / "summary.json").read_text())["beta"] == s["beta"]
        )
        rows = [list(csv.DictReader(p.open())) for p in (stacked, twin)]
        for a, b in zip(*rows):
            for col, va in a.items():
                if col in ("split", "seconds", "images_per_sec") or not va or not b.get(col):
                    continue
                x, y = float(va), float(b[col])
                if x != x or y != y:
                    continue
                rel = abs(x - y) / max(abs(y), 1e-6)
                if rel > worst.get(col, -1):
                    worst[col] = rel
    top = dict(sorted(worst.items(), key=lambda kv: -kv[1])[:8])
    print(f"   largest relative differences: {top}")
    return {"worst": top, "max": max(worst.values())}


def main() -> None:
    global DEADLINE, ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the 16-value sweep")
    parser.add_argument("--budget", type=float, default=420, help="seconds for all sections")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--data-root", default="data", help="Fashion-MNIST's data.root")
    parser.add_argument("--json", help="also write the results here, after every section")
    parser.add_argument("--only", nargs="+", help="run only these sections")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ARGS = parser.parse_args()
    if ARGS.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(
                "bench_gpu: no CUDA GPU visible, GPU figures skipped (--device cpu checks the script)"
            )
            return
    ARGS.data_root = str(Path(ARGS.data_root).resolve())
    ARGS.work = ARGS.work or tempfile.mkdtemp(prefix="bench_gpu-")
    DEADLINE = time.monotonic() + ARGS.budget
    order = [env, smoke, sweep16, syncs, precision, overheads, scaling, equivalence, resume]
    for run in order:
        if not ARGS.only or run.__name__ in ARGS.only:
            run()


if __name__ == "__main__":
    main()
