"""The optimisation loop: Adam over shuffled mini-batches sliced from in-memory uint8 tensors.

The trainer knows nothing about files: it reports each epoch through :class:`TrainHooks`
and can start from a :class:`TrainState` (resume). A non-finite loss, or a KL or reconstruction
term that grows by orders of magnitude over its running minimum
(:mod:`~vaesweep.training.divergence`), ends the run with status ``diverged`` instead of raising.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from vaesweep.config import EvalConfig, TrainConfig
from vaesweep.control.base import KLControl
from vaesweep.control.state import on_host
from vaesweep.data.augment import Augment, augmented_unit
from vaesweep.evaluation.metrics import SplitStats, evaluate, metrics_row, to_unit
from vaesweep.model.vae import VAE
from vaesweep.objective.terms import loss_terms
from vaesweep.training.adam import Optimizer
from vaesweep.training.divergence import DivergenceGuard
from vaesweep.training.precision import Precision

#: Steps between finiteness checks of the loss on accelerators (every step on the CPU).
CHECK_EVERY = 25


@dataclass
class EpochResult:
    """One epoch's rows: ``{"train": (row, kl_per_dim), "val": ...}`` (val only when evaluated)."""

    epoch: int
    step: int
    rows: dict[str, tuple[dict[str, float], list[float]]]


@dataclass
class FitResult:
    status: str  # "completed" or "diverged"
    epochs_done: int
    step: int
    error: str | None = None


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    model: VAE
    optimizer: Optimizer
    control: KLControl
    generator: torch.Generator
    epoch: int = 0
    step: int = 0
    #: fp16's loss-scaler state (empty in fp32 and bf16, and then not in the checkpoint).
    amp: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "control": self.control.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "step": self.step,
        }
        if self.amp:
            state["amp"] = self.amp
        return state

    def snapshot(self) -> dict[str, Any]:
        """:meth:`state_dict` with its own copy of every tensor (training goes on changing
        the live ones): the state of this moment, to save later."""
        return _copied(self.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.control.load_state_dict(state["control"])
        self.generator.set_state(
            state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"]
        )
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.amp = dict(state.get("amp") or {})


class TrainHooks:
    """Callbacks from the loop; the default does nothing."""

    def on_epoch_start(self, epoch: int, n_steps: int) -> None: ...

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        """After each optimiser step; ``loss`` is the detached batch objective (0-dim)."""

    def on_epoch_end(self, result: EpochResult, state: TrainState) -> None: ...


@dataclass
class Trainer:
    cfg: TrainConfig
    eval_cfg: EvalConfig
    binarize: str = "none"
    #: Seed for the validation noise (fixed across epochs and runs).
    eval_seed: int = 0
    #: Random crops / flips of training batches (data.augment_*); None = none.
    augment: Augment | None = None
    hooks: TrainHooks = field(default_factory=TrainHooks)

    def steps_per_epoch(self, n_train: int) -> int:
        return self.cfg.steps_per_epoch(n_train)

    def fit(self, state: TrainState, train: torch.Tensor, val: torch.Tensor) -> FitResult:
        """Train from ``state.step`` to ``cfg.total_steps``; ``train``/``val`` are uint8 on the device.

        The last epoch stops part-way when the step budget ends inside it (``train.steps``).
        """
        cfg, model = self.cfg, state.model
        n, bs = len(train), cfg.batch_size
        total = cfg.total_steps(n)
        device = train.device
        params = [p for p in model.parameters() if p.requires_grad]
        guard = DivergenceGuard.for_model(model.latent_dim, int(train[0].numel()))
        precision = Precision(cfg.precision, device)
        precision.load_state_dict(state.amp)
        while state.step < total:
            epoch = state.epoch + 1
            self.hooks.on_epoch_start(epoch, min(self.steps_per_epoch(n), total - state.step))
            model.train()
            stats = SplitStats(model.latent_dim)
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=state.generator, device=device)
            step0 = state.step
            for start in range(0, n, bs):
                batch = train[perm[start : start + bs]]
                if self.augment is None:
                    x = to_unit(batch, self.binarize, state.generator)
                else:
                    x = augmented_unit(batch, self.augment, self.binarize, state.generator)
                with precision.autocast():
                    mu, logvar = model.encode(x)
                    mu, logvar = mu.float(), logvar.float()
                    eps = torch.randn(mu.shape, generator=state.generator, device=device)
                    out = model.decode(model.reparameterize(mu, logvar, eps)).float()
                terms = loss_terms(x, out, mu, logvar, model.likelihood)
                objective = state.control.objective(terms, state.step)
                loss = objective.detach()
                # On a GPU, reading the loss back stalls the pipeline: check every few steps.
                check = (
                    on_host(device)
                    or state.step % CHECK_EVERY == 0
                    or start + bs >= n
                    or state.step + 1 >= total
                )
                if check:
                    # One read-back for the three numbers.
                    now, recon, kl = torch.stack(
                        [loss.float(), terms.recon.detach().mean(), terms.kl.detach().mean()]
                    ).tolist()
                    why = (
                        f"non-finite loss ({now})"
                        if not math.isfinite(now)
                        else guard.check(recon, kl, state.control.kl_weighted(state.step))
                    )
                    if why:
                        return FitResult(
                            "diverged",
                            state.epoch,
                            state.step,
                            f"{why} at epoch {epoch}, step {state.step}: "
                            f"recon={recon:.4g}, kl={kl:.4g}",
                        )
                state.optimizer.zero_grad(set_to_none=True)
                precision.backward(objective)
                if cfg.grad_clip is not None:
                    precision.unscale(state.optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                precision.step(state.optimizer)
                with torch.no_grad():
                    stats.add(terms, loss, mu)
                state.control.observe(terms, state.step)
                state.step += 1
                self.hooks.on_step(state.step, loss)
                if state.step >= total:
                    break
            seconds = time.perf_counter() - t0
            state.epoch = epoch
            state.amp = precision.state_dict()
            train_row = metrics_row(stats, model, state.control, state.step)
            train_row.update(state.control.stats())
            seen = min(n, (state.step - step0) * bs)
            train_row.update(seconds=seconds, images_per_sec=seen / seconds, lr=_lr(state))
            rows = {"train": (train_row, stats.kl_per_dim())}
            if epoch % cfg.eval_every == 0 or state.step >= total:
                t1 = time.perf_counter()
                val_row, val_kl = evaluate(
                    model,
                    val,
                    state.control,
                    state.step,
                    self.eval_cfg,
                    binarize=self.binarize,
                    seed=self.eval_seed,
                )
                val_row.update(state.control.stats())
                val_seconds = time.perf_counter() - t1
                val_row.update(
                    seconds=val_seconds, images_per_sec=len(val) / val_seconds, lr=_lr(state)
                )
                rows["val"] = (val_row, val_kl)
                if not all(math.isfinite(val_row[k]) for k in ("loss", "recon", "kl")):
                    self.hooks.on_epoch_end(EpochResult(epoch, state.step, rows), state)
                    return FitResult(
                        "diverged",
                        state.epoch,
                        state.step,
                        f"non-finite validation loss at epoch {epoch}",
                    )
            self.hooks.on_epoch_end(EpochResult(epoch, state.step, rows), state)
        return FitResult("completed", state.epoch, state.step)


def _lr(state: TrainState) -> float:
    return float(state.optimizer.param_groups[0]["lr"])


def _copied(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _copied(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_copied(v) for v in state)
    return state
