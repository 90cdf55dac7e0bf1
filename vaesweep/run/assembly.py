"""Run assembly: from a typed :class:`~vaesweep.config.Config` to the objects a run trains.

One function, :func:`assemble`, used by ``train`` (:mod:`vaesweep.run.job`), by ``vaesweep
eval`` (:mod:`vaesweep.commands.evaluate`) and by anything that needs the same model on the
same data (a stacked sweep assembles each member with it). The order of its steps is part of
the contract: threads, device, seeding, data, PCA spectrum, model, KL controller, so a run
with the same config and seed draws the same initial weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.control import KLControl, RunShape, build_control
from vaesweep.data import Splits, load_splits
from vaesweep.model import VAE, build_model
from vaesweep.model.layout import place
from vaesweep.training.device import configure_threads, resolve_device, seed_everything


@dataclass
class Assembly:
    """What :func:`assemble` built for one run."""

    config: Config
    splits: Splits
    #: (C, H, W) of one image.
    shape: tuple[int, int, int]
    model: VAE
    control: KLControl
    run_shape: RunShape
    device: torch.device
    threads: int
    #: PCA spectrum of the training images (``summary.json["data"]["pca"]``), if asked for.
    spectrum: dict[str, Any] | None = None


def preflight(config: Config) -> Splits:
    """Resolve the device and load the data of ``config`` (:class:`UserError` if either fails).

    Called before a run directory exists, so a missing dataset, an undecodable folder,
    ``data.limit=1`` or ``train.device=cuda`` without a GPU leave nothing behind. Image
    folders and CelebA are decoded into a cache, so the run itself loads them again quickly.
    """
    resolve_device(config.train.device)
    return load_splits(config.data)


def fallback_notes(splits: Splits) -> list[str]:
    """The data notes a user must see: data found somewhere other than where they said."""
    from vaesweep.data.idx import FALLBACK_NOTE

    return [n for n in splits.notes if n.startswith(FALLBACK_NOTE)]


def assemble(
    config: Config,
    *,
    device: torch.device | None = None,
    seed: bool = True,
    spectrum: bool = False,
    splits: Splits | None = None,
) -> Assembly:
    """Build data splits, model (on ``device``) and KL controller for ``config``.

    ``device``: where to put the model (default: ``config.train.device`` resolved here).
    ``seed``: seed torch/numpy/random from ``config.seed`` before anything random happens
    (training does; evaluating a checkpoint does not need to). ``spectrum``: also compute the
    PCA spectrum of the training images, between loading the data and building the model.
    ``splits``: images already loaded for ``config.data`` (the members of a stack share them).
    Raises :class:`~vaesweep.errors.UserError` for data that cannot be loaded.
    """
    threads = configure_threads(config.train.threads)
    dev = device if device is not None else resolve_device(config.train.device)
    if seed:
        seed_everything(config.seed, config.train.deterministic, dev)
    if splits is None:
        splits = load_splits(config.data)
    pca = None
    if spectrum:
        from vaesweep.data.spectrum import pca_spectrum

        pca = pca_spectrum(
            splits.train.images, seed=config.data.split_seed, binarize=config.data.binarize
        )
    model = build_model(config.model, config.loss, splits.shape)
    place(model, dev, splits.shape)
    c, h, w = splits.shape
    run_shape = RunShape.for_run(
        len(splits.train),
        config.train.batch_size,
        config.train.total_steps(len(splits.train)),
        (c, h, w),
        model.latent_dim,
        config.loss.recon_reduction,
    )
    control = build_control(config.kl, config.beta, run_shape)
    return Assembly(
        config=config,
        splits=splits,
        shape=(c, h, w),
        model=model,
        control=control,
        run_shape=run_shape,
        device=dev,
        threads=threads,
        spectrum=pca,
    )
