"""Benchmark: the disentanglement metrics against the training of a default dSprites run.

Target (issue 13): the metrics at the default evaluation sizes (``eval.disentanglement=auto``,
which is ``published`` on dSprites) cost under 10% of a default dSprites run.

For each image size, in one process and one torch thread (so CPU time is compute, not
spinning, on a shared machine):

* baseline: the CPU seconds of one optimiser step of the default model (``model=conv``,
  Bernoulli likelihood, batch ``train.batch_size``) on rendered dSprites images, the median of
  ``--steps`` steps. A default run (``vaesweep train data=dsprites``) takes the
  dataset's default ``train.steps`` (Locatello et al.'s 300,000) such steps; an epoch of the full grid (90% of 737,280 images after the validation split)
  takes 10,368. The run's validation and final evaluation are left out, so the ratio below is
  an upper bound of the metrics' share of a real run.
* the metrics: :func:`vaesweep.disentanglement.evaluate` with the preset's sample sizes on the
  same (untrained) encoder's means, as a run's end does it: CPU seconds in total, in encoding
  (rendering and the encoder) and per metric, and the number of distinct images encoded.

Printed: the metrics' CPU time as a share of the default run's training (target under 10%), in
training epochs of the full grid, and the shortest run (in optimiser steps) for which they are
under 10%. An untrained encoder encodes as fast as a trained one; the classifiers' time
depends a little on the codes.

Usage: ``python bench/bench_disentanglement.py [--size 32 64] [--preset auto|published|quick]``
(``auto`` is the published sizes on dSprites: estimated at about 500 CPU-s at 32 px and
1,250 at 64 px on the development machine; ``--preset quick`` at 32 px took 86 CPU-s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from vaesweep.config import Config, ConstantKL, ConvConfig, DataConfig, LossConfig
from vaesweep.data.dsprites import DSpritesRenderer, dsprites_grid
from vaesweep.disentanglement import evaluate
from vaesweep.disentanglement.settings import resolve
from vaesweep.evaluation.disentanglement import encoder_means
from vaesweep.model import build_model
from vaesweep.objective.terms import loss_terms

TARGET = 0.10
VAL_FRACTION = 0.1  # data.val_fraction's default: an epoch is 90% of the grid


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def step_cpu_seconds(model, renderer, grid, batch: int, steps: int) -> float:
    """Median CPU seconds of one Adam step on ``batch`` rendered images."""
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(steps + 1):
        x = renderer(grid.sample_factors(batch, rng)).float().div_(255.0)
        t0 = time.process_time()
        params, mu, logvar = model(x, torch.randn(batch, model.latent_dim))
        terms = loss_terms(x, params, mu, logvar, model.likelihood)
        loss = terms.recon.mean() + 4.0 * terms.kl.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step is a warm-up
            times.append(time.process_time() - t0)
    return statistics.median(times)


def bench_size(size: int, preset: str, steps: int) -> dict:
    torch.manual_seed(0)
    t0 = time.process_time()
    renderer = DSpritesRenderer(size)
    grid = dsprites_grid(renderer)
    setup = time.process_time() - t0
    model = build_model(ConvConfig(), LossConfig(likelihood="bernoulli"), (1, size, size))
    train = Config(data=DataConfig(name="dsprites"), model=ConvConfig(), kl=ConstantKL()).train
    step = step_cpu_seconds(model, renderer, grid, train.batch_size, steps)
    run = step * train.steps
    epoch_steps = -(-round(grid.total * (1 - VAL_FRACTION)) // train.batch_size)
    epoch = step * epoch_steps

    name, settings = resolve(preset, grid.total) or ("off", None)
    assert settings is not None, "preset off measures nothing"
    model.eval()
    represent = encoder_means(model, grid, torch.device("cpu"))
    encode = [0.0]

    def timed(classes: np.ndarray) -> np.ndarray:
        t = time.process_time()
        out = represent(classes)
        encode[0] += time.process_time() - t
        return out

    t0, w0 = time.process_time(), time.perf_counter()
    result = evaluate(grid, timed, settings)
    metrics = time.process_time() - t0
    return {
        "size": size,
        "preset": name,
        "renderer_s": setup,
        "step_s": step,
        "run_s": run,
        "run_steps": train.steps,
        "epoch_s": epoch,
        "metrics_s": metrics,
        "metrics_wall_s": time.perf_counter() - w0,
        "encode_s": encode[0],
        "encoded": result["encoded_combinations"],
        "per_metric_wall_s": result["seconds"],
    }


def report(r: dict) -> bool:
    share = r["metrics_s"] / r["run_s"]
    met = share < TARGET
    shortest = r["metrics_s"] / (TARGET * r["step_s"])
    print(
        f"{r['size']} px: one training step {1e3 * r['step_s']:.0f} ms CPU "
        f"({1e3 * r['step_s'] / 64:.2f} ms per image); default run {r['run_steps']} steps = "
        f"{r['run_s']:.0f} CPU-s; one epoch of the full grid = {r['epoch_s'] / 60:.1f} CPU-min"
    )
    print(
        f"  metrics ({r['preset']}): {r['metrics_s']:.0f} CPU-s ({r['metrics_wall_s']:.0f} s wall), "
        f"of which encoding {r['encode_s']:.0f} CPU-s for {r['encoded']:,} distinct images; "
        f"per part (wall s): {r['per_metric_wall_s']}"
    )
    print(
        f"  = {100 * share:.0f}% of the default run's training (target under "
        f"{100 * TARGET:.0f}%: {'met' if met else 'NOT met'}), "
        f"{r['metrics_s'] / r['epoch_s']:.2f} epochs; under 10% from {shortest:,.0f} steps "
        f"({shortest * r['step_s'] / r['epoch_s']:.1f} epochs) on"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--preset", default="auto", choices=("auto", "published", "quick"))
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"dSprites metrics vs a default run, one torch thread; {load()}")
    for size in args.size:
        report(bench_size(size, args.preset, args.steps))
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
