"""Per-step cost of K stacked members against K sequential single-model steps.

    python bench/bench_stack.py [--k 8 16] [--threads 2] [--rounds 5] [--vmap]

One training step of the default digits config (conv VAE on 8x8, batch 64, mse, Adam) as the
trainers take it: gather the batch from the uint8 tensor, forward, loss terms, objective,
backward, fused Adam. Arms alternate; each prints the median of ``--rounds`` timings of
``--steps`` steps, in ms per step of all K members, and the ratios sequential / stacked (and
sequential / ``torch.func`` vmap with ``--vmap``). No figure here is a pass/fail target: the
machine's load moves them, the ratios measured in one run are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from vaesweep.config import ConvConfig, LossConfig
from vaesweep.control import KLControl, RunShape
from vaesweep.control.stacked import StackedControl
from vaesweep.evaluation.metrics import to_unit
from vaesweep.model import build_model
from vaesweep.model.stacked import StackedVAE
from vaesweep.objective.stacked import shared_likelihood, stacked_loss_terms
from vaesweep.objective.terms import loss_terms
from vaesweep.training.adam import make_adam

SHAPE = (1, 8, 8)
N_TRAIN = 1617  # the default digits training split
BATCH = 64


def _members(k: int) -> list:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(build_model(ConvConfig(), LossConfig(), SHAPE))
    return out


def _shape() -> RunShape:
    return RunShape.for_run(N_TRAIN, BATCH, 50, SHAPE, ConvConfig().latent_dim, "sum")


def sequential_step(k: int, data: torch.Tensor) -> Callable[[], None]:
    models = _members(k)
    opts = [make_adam(m, 1e-3, 0.0) for m in models]
    controls = [KLControl(10.0 ** (i / 2 - 3), _shape()) for i in range(k)]
    gens = [torch.Generator().manual_seed(i) for i in range(k)]

    def step() -> None:
        for m, opt, control, gen in zip(models, opts, controls, gens):
            idx = torch.randint(len(data), (BATCH,), generator=gen)
            x = to_unit(data[idx], "none", None)
            mu, logvar = m.encode(x)
            eps = torch.randn(mu.shape, generator=gen)
            out = m.decode(m.reparameterize(mu, logvar, eps))
            loss = control.objective(loss_terms(x, out, mu, logvar, m.likelihood), 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return step


def stacked_step(k: int, data: torch.Tensor) -> Callable[[], None]:
    model = StackedVAE(_members(k))
    opt = make_adam(model, 1e-3, 0.0)
    control = StackedControl([KLControl(10.0 ** (i / 2 - 3), _shape()) for i in range(k)])
    gens = [torch.Generator().manual_seed(i) for i in range(k)]
    shared = shared_likelihood(list(model.likelihoods))
    m = model.latent_dim

    def step() -> None:
        idx = torch.stack([torch.randint(len(data), (BATCH,), generator=g) for g in gens])
        x = to_unit(data[idx], "none", None)
        mu, logvar = model.encode(x)
        eps = torch.stack([torch.randn((BATCH, m), generator=g) for g in gens])
        out = model.decode(model.reparameterize(mu, logvar, eps))
        terms = stacked_loss_terms(x, out, mu, logvar, model.likelihoods, shared)
        objectives = control.objective(terms, 0)
        opt.zero_grad(set_to_none=True)
        objectives.sum().backward()
        opt.step()

    return step


def vmap_step(k: int, data: torch.Tensor) -> Callable[[], None]:
    """The same members through ``torch.func.stack_module_state`` + ``vmap``."""
    from torch.func import functional_call, stack_module_state, vmap

    models = _members(k)
    params, buffers = stack_module_state(models)
    leaves = list(params.values())
    opt = torch.optim.Adam(leaves, lr=1e-3, fused=True)
    base = models[0]
    betas = torch.tensor([10.0 ** (i / 2 - 3) for i in range(k)])
    gens = [torch.Generator().manual_seed(i) for i in range(k)]

    def one(p, b, x, eps, beta):
        out, mu, logvar = functional_call(base, (p, b), (x, eps))
        terms = loss_terms(x, out, mu, logvar, base.likelihood)
        return terms.recon.mean() + beta * terms.kl.mean()

    batched = vmap(one)

    def step() -> None:
        idx = torch.stack([torch.randint(len(data), (BATCH,), generator=g) for g in gens])
        x = to_unit(data[idx], "none", None)
        eps = torch.stack([torch.randn((BATCH, base.latent_dim), generator=g) for g in gens])
        loss = batched(params, buffers, x, eps, betas).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def fit_seconds(k: int, epochs: int, stacked: bool) -> float:
    """Wall time of training k default digits members for ``epochs`` through the real
    trainers (per-epoch validation included, no files): one stack, or k single runs."""
    from vaesweep.config import Config, ConstantKL, TrainConfig
    from vaesweep.control import build_control
    from vaesweep.data import load_splits
    from vaesweep.run.stack_assembly import assemble_stack
    from vaesweep.training.device import seed_everything
    from vaesweep.training.stacked_trainer import StackedTrainer
    from vaesweep.training.trainer import Trainer, TrainState

    configs = [
        Config(
            model=ConvConfig(),
            kl=ConstantKL(),
            train=TrainConfig(epochs=epochs, progress="off"),
            beta=10.0 ** (i / 2 - 3),
            seed=i,
        )
        for i in range(k)
    ]
    splits = load_splits(configs[0].data)
    cpu = torch.device("cpu")
    train, val = splits.train.images, splits.val.images
    t0 = time.perf_counter()
    if stacked:
        state = assemble_stack(configs, device=cpu)[1]
        StackedTrainer(configs[0].train, configs[0].eval).fit(state, train, val)
    else:
        for c in configs:
            seed_everything(c.seed, True, cpu)
            model = build_model(c.model, c.loss, splits.shape)
            shape = RunShape.for_run(len(train), 64, epochs, splits.shape, 16, "sum")
            state = TrainState(
                model,
                make_adam(model, 1e-3, 0.0),
                build_control(c.kl, c.beta, shape),
                torch.Generator().manual_seed(c.seed),
            )
            Trainer(c.train, c.eval).fit(state, train, val)
    return time.perf_counter() - t0


def per_step_ms(step: Callable[[], None], steps: int) -> float:
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--vmap", action="store_true", help="also time torch.func vmap")
    parser.add_argument(
        "--fit", type=int, default=0, help="also time EPOCHS of the real trainers (digits)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fit:
        for k in args.k:
            seq, st = [], []
            for _ in range(max(1, args.rounds // 2)):
                seq.append(fit_seconds(k, args.fit, stacked=False))
                st.append(fit_seconds(k, args.fit, stacked=True))
            s, t = statistics.median(seq), statistics.median(st)
            print(
                f"K={k} fit {args.fit} epochs: {k} single runs {s:.2f} s, one stack {t:.2f} s; "
                f"ratio {s / t:.2f}x",
                flush=True,
            )
    data = torch.randint(0, 256, (N_TRAIN, *SHAPE), dtype=torch.uint8)
    for k in args.k:
        arms = {"sequential": sequential_step(k, data), "stacked": stacked_step(k, data)}
        if args.vmap:
            arms["vmap"] = vmap_step(k, data)
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            for name, step in arms.items():
                times[name].append(per_step_ms(step, args.steps))
        med = {name: statistics.median(t) for name, t in times.items()}
        line = f"K={k} threads={args.threads}: " + ", ".join(
            f"{name} {ms:.2f} ms" for name, ms in med.items()
        )
        ratios = ", ".join(
            f"sequential/{name} {med['sequential'] / med[name]:.2f}x"
            for name in med
            if name != "sequential"
        )
        print(f"{line}; {ratios}", flush=True)


if __name__ == "__main__":
    main()
