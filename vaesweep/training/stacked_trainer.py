"""The optimisation loop of a stack: K members, one forward and backward per step.

It mirrors :class:`~vaesweep.training.trainer.Trainer` member by member: member k draws its
batch order, augmentation (``data.augment_*``), Bernoulli draws and reparameterisation noise
from its own generator, in the
order its single run draws them, so it sees exactly its single run's batches and noise
(gathered by index from the shared in-memory uint8 tensor); its objective comes from its own
controller; gradient clipping is per member; the loss that is differentiated is the sum of
the members' objectives, so each member's gradient is its own. Each member reports through
its own hooks (:class:`MemberHooks`, the single run's) with the rows its single run would
write (:func:`~vaesweep.evaluation.metrics.metrics_row`, :func:`evaluate`), and a member whose
loss turns non-finite is recorded ``diverged`` and frozen while the others carry on.
``train.precision=bf16`` runs the forward pass under autocast as the single run does; fp16,
whose loss scaling is per run, has no stacked form.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from vaesweep.config import EvalConfig, TrainConfig
from vaesweep.control.state import on_host
from vaesweep.data.augment import Augment
from vaesweep.evaluation.metrics import metrics_row, to_unit
from vaesweep.evaluation.stacked_metrics import evaluate_stack, member_shape
from vaesweep.evaluation.stacked_stats import StackedSplitStats
from vaesweep.objective.stacked import shared_likelihood, stacked_loss_terms
from vaesweep.training.divergence import DivergenceGuard
from vaesweep.training.precision import Precision
from vaesweep.training.stacked_state import (
    MemberFreezer,
    MemberState,
    StackState,
    clip_member_grads,
)
from vaesweep.training.trainer import CHECK_EVERY, EpochResult, FitResult


class MemberHooks(Protocol):
    """A member's callbacks: :class:`~vaesweep.training.trainer.TrainHooks` of its single run,
    handed the member's :class:`MemberState` where a single run hands its ``TrainState``."""

    def on_epoch_start(self, epoch: int, n_steps: int) -> None: ...

    def on_step(self, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, result: EpochResult, state: MemberState) -> None: ...


class NoHooks:
    """Member hooks that do nothing."""

    def on_epoch_start(self, epoch: int, n_steps: int) -> None: ...

    def on_step(self, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, result: EpochResult, state: MemberState) -> None: ...


def member_batches(
    train: torch.Tensor,
    index: torch.Tensor,
    binarize: str,
    gens: list[torch.Generator],
    augment: Augment | None,
) -> torch.Tensor:
    """(K, b) indices -> (K, b, C, H, W) training pixels in [0, 1].

    Member k draws from its own generator what its single run draws for a batch
    (:class:`~vaesweep.training.trainer.Trainer`, :func:`~vaesweep.data.augment.augmented_unit`):
    its augmentation (crop, then flip), then its Bernoulli pixels; the augmentation itself is
    one batched operation over all members' images.
    """
    x = to_unit(train[index], "none", None)
    b = index.shape[1]
    if augment is not None:
        drawn = [augment.draw(b, g, x.device) for g in gens]
        if drawn[0] is not None:
            whole = torch.cat([d for d in drawn if d is not None])
            x = augment.apply(x.flatten(0, 1), whole).view(x.shape)
            if binarize == "dynamic":
                x = x.clamp_(0, 1)
    if binarize == "dynamic":
        x = torch.stack([torch.bernoulli(x[i], generator=g) for i, g in enumerate(gens)])
    return x


@dataclass
class StackedTrainer:
    cfg: TrainConfig
    eval_cfg: EvalConfig
    binarize: str = "none"
    eval_seed: int = 0
    #: Random crops / flips of training batches (data.augment_*), per member; None = none.
    augment: Augment | None = None
    #: One hooks object per member (the single run's, e.g. the record writer).
    hooks: Sequence[MemberHooks] = field(default_factory=list)
    #: Test hook: called with the state before every step (e.g. to poison one member).
    before_step: Callable[[StackState], None] | None = None

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.cfg.batch_size)

    def fit(self, state: StackState, train: torch.Tensor, val: torch.Tensor) -> list[FitResult]:
        """Train every live member from ``state.step`` to ``cfg.total_steps``; one result each.

        As in the single run, the last epoch stops part-way when the step budget ends inside it,
        and a member whose KL or reconstruction term grows by orders of magnitude over its
        running minimum (:mod:`vaesweep.training.divergence`) is recorded ``diverged``.
        """
        cfg, model = self.cfg, state.model
        k_all, m = model.k, model.latent_dim
        hooks: list[MemberHooks] = list(self.hooks) or [NoHooks() for _ in range(k_all)]
        n, bs, device = len(train), cfg.batch_size, train.device
        total_steps = cfg.total_steps(n)
        guards = [DivergenceGuard.for_model(m, int(train[0].numel())) for _ in range(k_all)]
        controls = state.control.controls
        results: list[FitResult | None] = [None] * k_all
        freezer = MemberFreezer()
        for k in range(k_all):
            if not state.alive[k]:
                freezer.freeze(state, k)
        likelihoods = model.member_likelihoods()
        shared = shared_likelihood(likelihoods)
        live_mask: tuple[list[bool], torch.Tensor] | None = None
        precision = Precision(cfg.precision, device)
        if precision.scaler is not None:
            # One loss scale for K members would skip every member's step when one overflows.
            raise ValueError("train.precision=fp16 trains one run per process (no stacked form)")
        while state.step < total_steps and any(state.alive):
            epoch = state.epoch + 1
            step0 = state.step
            for k in self._live(state):
                hooks[k].on_epoch_start(
                    epoch, min(self.steps_per_epoch(n), total_steps - state.step)
                )
            model.train()
            stats = StackedSplitStats(m)
            t0 = time.perf_counter()
            perms = torch.stack(
                [torch.randperm(n, generator=g, device=device) for g in state.generators]
            )
            for start in range(0, n, bs):
                if self.before_step is not None:
                    self.before_step(state)
                index = perms[:, start : start + bs]
                x = member_batches(train, index, self.binarize, state.generators, self.augment)
                with precision.autocast():
                    mu, logvar = model.encode(x)
                    mu, logvar = mu.float(), logvar.float()
                    b = x.shape[1]
                    eps = torch.stack(
                        [torch.randn((b, m), generator=g, device=device) for g in state.generators]
                    )
                    out = model.decode(model.reparameterize(mu, logvar, eps)).float()
                terms = stacked_loss_terms(x, out, mu, logvar, likelihoods, shared)
                objectives = state.control.objective(terms, state.step)
                losses = objectives.detach()
                check = (
                    on_host(device)
                    or state.step % CHECK_EVERY == 0
                    or start + bs >= n
                    or state.step + 1 >= total_steps
                )
                if check:
                    recons = terms.recon.detach().mean(1).tolist()
                    kls = terms.kl.detach().mean(1).tolist()
                    bad = set(self._nonfinite(state, losses))
                    for k in self._live(state):
                        why = (
                            f"non-finite loss ({float(losses[k])})"
                            if k in bad
                            else guards[k].check(
                                recons[k], kls[k], controls[k].kl_weighted(state.step)
                            )
                        )
                        if not why:
                            continue
                        results[k] = FitResult(
                            "diverged",
                            state.epoch,
                            state.step,
                            f"{why} at epoch {epoch}, step {state.step}: "
                            f"recon={recons[k]:.4g}, kl={kls[k]:.4g}",
                        )
                        state.alive[k] = False
                        freezer.freeze(state, k)
                    if not any(state.alive):
                        break
                if live_mask is None or live_mask[0] != state.alive:  # changes rarely: cached
                    live_mask = (list(state.alive), torch.tensor(state.alive, device=device))
                total = torch.where(live_mask[1], objectives, torch.zeros_like(objectives)).sum()
                state.optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip is not None:
                    clip_member_grads(model, cfg.grad_clip)
                state.optimizer.step()
                freezer.restore()
                stats.add(terms, losses, mu)
                state.control.observe(terms, state.step, state.alive)
                state.step += 1
                for k in self._live(state):
                    hooks[k].on_step(state.step, losses[k])
                if state.step >= total_steps:
                    break
            if not any(state.alive):
                break
            seconds = time.perf_counter() - t0
            state.epoch = epoch
            seen = min(n, (state.step - step0) * bs)
            last = state.step >= total_steps
            self._end_epoch(state, stats, hooks, results, freezer, val, epoch, seconds, seen, last)
        return [r or FitResult("completed", state.epoch, state.step) for r in results]

    @staticmethod
    def _live(state: StackState) -> list[int]:
        return [k for k, a in enumerate(state.alive) if a]

    @staticmethod
    def _nonfinite(state: StackState, losses: torch.Tensor) -> list[int]:
        bad = (~torch.isfinite(losses)).tolist()
        return [k for k in range(len(bad)) if bad[k] and state.alive[k]]

    def _end_epoch(
        self,
        state: StackState,
        stats: StackedSplitStats,
        hooks: list[MemberHooks],
        results: list[FitResult | None],
        freezer: MemberFreezer,
        val: torch.Tensor,
        epoch: int,
        seconds: float,
        n_train: int,
        last: bool,
    ) -> None:
        """Each live member's rows, from the single-run row and evaluation code."""
        cfg, model = self.cfg, state.model
        lr = float(state.optimizer.param_groups[0]["lr"])
        live = self._live(state)
        val_rows: dict[int, tuple[dict[str, float], list[float]]] = {}
        val_seconds = 0.0
        if epoch % cfg.eval_every == 0 or last:
            t1 = time.perf_counter()
            val_rows = evaluate_stack(
                model,
                val,
                state.control,
                state.step,
                self.eval_cfg,
                live,
                binarize=self.binarize,
                seed=self.eval_seed,
            )
            val_seconds = time.perf_counter() - t1
        for k in live:
            control = state.control.controls[k]
            member_stats = stats.member(k)
            train_row = metrics_row(member_stats, member_shape(model, k), control, state.step)
            train_row.update(control.stats())
            train_row.update(seconds=seconds, images_per_sec=n_train / seconds, lr=lr)
            rows = {"train": (train_row, member_stats.kl_per_dim())}
            if k in val_rows:
                val_row, val_kl = val_rows[k]
                val_row.update(control.stats())
                val_row.update(seconds=val_seconds, images_per_sec=len(val) / val_seconds, lr=lr)
                rows["val"] = (val_row, val_kl)
            hooks[k].on_epoch_end(EpochResult(epoch, state.step, rows), state.member(k))
            if k in val_rows and not all(
                math.isfinite(val_rows[k][0][key]) for key in ("loss", "recon", "kl")
            ):
                results[k] = FitResult(
                    "diverged",
                    state.epoch,
                    state.step,
                    f"non-finite validation loss at epoch {epoch}",
                )
                state.alive[k] = False
                freezer.freeze(state, k)
