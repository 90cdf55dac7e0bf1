"""Benchmark: 64 px colour training (data=photos) on model=conv and model=resconv.

``throughput`` (run by ``make bench``): training images/s of one optimiser step at batch 64 for
each model, in fp32 and under bf16 autocast, and the same as a share of this CPU's ceiling,
measured in the same run: a 2048^3 matmul in fp32 and in bf16. Compute per image is counted
by ``torch.utils.flop_counter`` (forward + backward), so share = images/s x FLOP/image / ceiling.
Arms alternate so machine noise hits all alike; figures are medians over the repeats.

``compare``: which model reconstructs better for the same compute? Each arm (model x beta x
reduction) trains on data=photos at 64 px from the same seed; arms take steps in turn, and each
stops when its own CPU time (one torch thread, so CPU time is compute, not spinning) reaches
the budget: equal wall time on an idle core, even on a shared machine. Then validation PSNR
(z = mu), rate (KL, nats per image) and active units (Var_x E[z_i|x] > 0.01) are printed.

Usage: ``python bench/bench_colour.py throughput [--repeats N]`` or
``python bench/bench_colour.py compare [--cpu-seconds S] [--size 64]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from vaesweep.config import ConvConfig, DataConfig, LossConfig, ResConvConfig
from vaesweep.data.registry import load_splits
from vaesweep.model import build_model
from vaesweep.objective.terms import LossTerms, loss_terms

MODELS = {"conv": ConvConfig(), "resconv": ResConvConfig()}
BATCH = 64


def beta_vae_objective(terms: LossTerms, beta: float, recon_scale: float = 1.0) -> torch.Tensor:
    """``recon_scale * mean(recon) + beta * mean(KL)``, as the constant-beta control minimises."""
    return recon_scale * terms.recon.mean() + beta * terms.kl.mean()


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def flops_per_image(model: torch.nn.Module, shape: tuple[int, int, int]) -> float:
    x = torch.rand(1, *shape)
    with FlopCounterMode(display=False) as counter:
        params, mu, logvar = model(x, torch.randn(1, model.latent_dim))
        terms = loss_terms(x, params, mu, logvar, model.likelihood)
        beta_vae_objective(terms, 1.0).backward()
    return float(counter.get_total_flops())


def matmul_ceiling(dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    """FLOP/s of an n^3 matmul (best of ``reps``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def step_seconds(model, opt, x: torch.Tensor, bf16: bool, steps: int = 4) -> float:
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            params, mu, logvar = model(x, torch.randn(len(x), model.latent_dim))
        terms = loss_terms(x, params.float(), mu.float(), logvar.float(), model.likelihood)
        opt.zero_grad(set_to_none=True)
        beta_vae_objective(terms, 1.0).backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def throughput(repeats: int, size: int) -> None:
    shape = (3, size, size)
    x = torch.rand(BATCH, *shape)
    arms = {}
    for name, cfg in MODELS.items():
        torch.manual_seed(0)
        model = build_model(cfg, LossConfig(), shape)
        arms[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-4))
    print(f"64 px colour training, batch {BATCH}, {torch.get_num_threads()} threads; {load()}")
    flops = {name: flops_per_image(m, shape) for name, (m, _) in arms.items()}
    times: dict[tuple[str, str], list[float]] = {}
    ceilings: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        ceilings["fp32"].append(matmul_ceiling(torch.float32))
        ceilings["bf16"].append(matmul_ceiling(torch.bfloat16))
        for name, (model, opt) in arms.items():
            for prec in ("fp32", "bf16"):
                times.setdefault((name, prec), []).append(
                    step_seconds(model, opt, x, prec == "bf16")
                )
    ceiling = {k: statistics.median(v) for k, v in ceilings.items()}
    print(
        f"ceiling (2048^3 matmul): fp32 {ceiling['fp32'] / 1e9:.0f} GFLOP/s, "
        f"bf16 {ceiling['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print(f"{'model':8} {'MFLOP/img':>9} {'prec':>5} {'img/s':>7} {'GFLOP/s':>8} {'share':>6}")
    for (name, prec), ts in times.items():
        ips = BATCH / statistics.median(ts)
        achieved = ips * flops[name]
        print(
            f"{name:8} {flops[name] / 1e6:9.0f} {prec:>5} {ips:7.0f} {achieved / 1e9:8.1f} "
            f"{achieved / ceiling[prec]:6.1%}"
        )
    print(f"end: {load()}")


def evaluate(model, val: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        x = val.float() / 255
        mu, logvar = model.encode(x)
        mse = float(((model.likelihood.mean(model.decode(mu)) - x) ** 2).mean())
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    model.train()
    return {
        "psnr": 10 * math.log10(1 / mse),
        "rate": float(kl.sum(1).mean()),
        "active": int((mu.var(0) > 0.01).sum()),
    }


def compare(cpu_seconds: float, size: int, arms_spec: list[str]) -> None:
    torch.set_num_threads(1)
    splits = load_splits(DataConfig(name="photos", image_size=size))
    train, val = splits.train.images, splits.val.images
    shape = splits.shape
    arms = []
    for spec in arms_spec:
        name, beta, reduction = spec.split(":")
        loss_cfg = LossConfig(recon_reduction=reduction)
        torch.manual_seed(0)
        model = build_model(MODELS[name], loss_cfg, shape)
        arms.append(
            {
                "spec": spec,
                "model": model,
                "beta": float(beta),
                "scale": 1.0 if reduction == "sum" else 1.0 / math.prod(shape),
                "opt": torch.optim.Adam(model.parameters(), lr=1e-3),
                "gen": torch.Generator().manual_seed(0),
                "cpu": 0.0,
                "steps": 0,
                "perm": torch.empty(0, dtype=torch.long),
            }
        )
    print(f"compare at {size} px, {cpu_seconds:.0f} CPU s per arm, 1 thread; start {load()}")
    t_start = time.perf_counter()
    while any(a["cpu"] < cpu_seconds for a in arms):
        for a in arms:
            if a["cpu"] >= cpu_seconds:
                continue
            c0 = time.process_time()
            if len(a["perm"]) < BATCH:
                a["perm"] = torch.randperm(len(train), generator=a["gen"])
            idx, a["perm"] = a["perm"][:BATCH], a["perm"][BATCH:]
            x = train[idx].float() / 255
            model = a["model"]
            mu, logvar = model.encode(x)
            eps = torch.randn(mu.shape, generator=a["gen"])
            params = model.decode(model.reparameterize(mu, logvar, eps))
            terms = loss_terms(x, params, mu, logvar, model.likelihood)
            a["opt"].zero_grad(set_to_none=True)
            beta_vae_objective(terms, a["beta"], a["scale"]).backward()
            a["opt"].step()
            a["steps"] += 1
            a["cpu"] += time.process_time() - c0
    print(f"wall {time.perf_counter() - t_start:.0f} s; end {load()}")
    print(
        f"{'arm (model:beta:reduction)':28} {'steps':>6} {'epochs':>6} {'PSNR dB':>8} "
        f"{'rate nats':>9} {'active':>9}"
    )
    for a in arms:
        r = evaluate(a["model"], val)
        epochs = a["steps"] * BATCH / len(train)
        print(
            f"{a['spec']:28} {a['steps']:6d} {epochs:6.1f} {r['psnr']:8.2f} {r['rate']:9.1f} "
            f"{r['active']:4d}/{a['model'].latent_dim:<4d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--size", type=int, default=64)
    c = sub.add_parser("compare")
    c.add_argument("--cpu-seconds", type=float, default=120)
    c.add_argument("--size", type=int, default=64)
    c.add_argument(
        "--arms",
        default="conv:0.01:sum,conv:1:sum,resconv:0.01:sum,resconv:1:sum,conv:1:mean",
    )
    args = parser.parse_args()
    if args.cmd == "throughput":
        throughput(args.repeats, args.size)
    else:
        compare(args.cpu_seconds, args.size, args.arms.split(","))


if __name__ == "__main__":
    main()
