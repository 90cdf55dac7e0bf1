"""Benchmark: ``vaesweep report`` over 100 runs of 50 epochs each must render in under 15 s.

Fabricates a sweep of 20 betas x 5 seeds, 50 epochs each, with the real writer code
(:mod:`vaesweep.testing.fabricate`: RunRecord, save_grid, SweepPlan) into a temporary folder,
then times :func:`vaesweep.report.build.build_report` in a fresh interpreter (so imports count,
as they do for a user) and prints seconds and the ratio to the target.

Usage: ``.venv/bin/python bench/bench_report.py [--runs 100] [--epochs 50] [--format html]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 15.0

TIMED = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from vaesweep.report.build import build_report
path = build_report([Path(sys.argv[1])], fmt=sys.argv[2])
print(f"{time.perf_counter() - t0:.3f}")
assert "torch" not in sys.modules, "the report imported torch"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--format", default="html", choices=("html", "md"))
    parser.add_argument("--repeat", type=int, default=3, help="timed builds (best is reported)")
    args = parser.parse_args()

    import numpy as np

    from vaesweep.testing.fabricate import fabricate_sweep

    seeds = list(range(5)) if args.runs >= 10 else [0]
    n_betas = max(1, args.runs // len(seeds))
    betas = [float(f"{b:.3g}") for b in np.geomspace(1e-3, 30, n_betas)]
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "bench"
        t0 = time.perf_counter()
        dirs = fabricate_sweep(sweep, betas, seeds, epochs=args.epochs, latent_dim=16)
        print(
            f"fabricated {len(dirs)} runs x {args.epochs} epochs in {time.perf_counter() - t0:.1f} s"
        )
        times = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-c", TIMED, str(sweep), args.format],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
        best = min(times)
        print(f"build_report ({args.format}): " + ", ".join(f"{t:.2f} s" for t in times))
        print(f"best {best:.2f} s = {best / TARGET_S:.2f} x the {TARGET_S:.0f} s target")
        return 0 if best < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
