"""Run assembly: from a typed :class:`~vaesweep.config.Config` to the objects a run trains.

One function, :func:`assemble`, used by ``train`` (:mod:`vaesweep.run.job`), by ``vaesweep
eval`` (:mod:`vaesweep.commands.evaluate`) and by anything that needs the same model on the
same data (a stacked sweep assembles each member with it). The order of its steps is part of
the contract: threads, device, seeding, data, PCA spectrum, model, KL controller, so a run
with the same config and seed draws the same initial weights.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.control import KLControl, RunShape, build_control
from vaesweep.data import Splits, load_splits
from vaesweep.errors import ConfigError, UserError
from vaesweep.model import VAE, build_model
from vaesweep.model.fit import check_fits, parameter_count, parameter_floor
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


#: Bytes each parameter takes while it trains, at the least: its float32 value and gradient
#: and Adam's two moments (bf16 and fp16 training keep all four in float32 too).
TRAINING_BYTES_PER_PARAMETER = 16


def preflight(config: Config, *, remote: bool = False) -> Splits:
    """Resolve the device, load the data of ``config`` and check that its model fits them
    (:class:`UserError` if any fails).

    Called before a run directory exists, so a missing dataset, an undecodable folder,
    ``data.limit=1``, ``train.device=cuda`` without a GPU, ``model.depth=5`` on 8 px images
    or a model too large for the device's memory leave nothing behind. Image folders and
    CelebA are decoded into a cache, so the run itself loads them again quickly.

    ``remote``: the run trains on other machines (a cluster's nodes), whose devices and
    memory this one cannot see: the device is not resolved and the memory check takes
    :data:`REMOTE_MEMORY` as the node's memory.
    """
    device = torch.device("cpu") if remote else resolve_device(config.train.device)
    if not remote:
        check_gpu_index(config.train.device, device)
    splits = load_splits(config.data)
    check_model(config, splits.shape, device, remote=remote)
    return splits


def check_gpu_index(name: str, device: torch.device) -> None:
    """:class:`UserError` when ``train.device=cuda:N`` names a GPU this machine does not have
    (it resolved, and the run failed at its first tensor: "invalid device ordinal")."""
    if device.type != "cuda" or device.index is None:
        return
    count = torch.cuda.device_count()
    if device.index >= count:
        have = "no GPU" if count == 0 else f"{count} GPU{'s' if count > 1 else ''}"
        last = f", cuda:0 to cuda:{count - 1}" if count > 1 else (", cuda:0" if count else "")
        raise UserError(
            f"train.device={name} names GPU {device.index}, but this machine has {have}"
            f"{last}; use train.device=cuda (the first) or auto"
        )


def check_model(
    config: Config,
    shape: tuple[int, int, int],
    device: torch.device | None = None,
    *,
    remote: bool = False,
) -> None:
    """:class:`ConfigError` unless ``config.model`` can be built for images of ``shape``
    (C, H, W) (:func:`~vaesweep.model.fit.check_fits`) and its parameters can train in the
    memory of ``device`` (default: ``config.train.device`` resolved; :func:`check_memory`).

    Nothing is allocated and no data is loaded: :func:`preflight` calls it, and a sweep whose
    runs share their data should call it for each run with the shape of that data, since
    ``model.depth=2,5`` differ in their model only. ``remote``: as in :func:`preflight`."""
    check_fits(config.model, shape, config.data.name)
    if remote:
        check_memory(config, shape, torch.device("cpu"), have=REMOTE_MEMORY)
    else:
        check_memory(
            config, shape, device if device is not None else resolve_device(config.train.device)
        )


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory ``device`` has in all (a GPU's, else this machine's); None if unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError, AssertionError):
        return None


#: The memory taken for a cluster node's, whose own this machine cannot see: more than any
#: node has today, so only a model that could train nowhere is refused before submission.
REMOTE_MEMORY = 2 * 10**12  # 2 TB


def check_memory(
    config: Config, shape: tuple[int, int, int], device: torch.device, have: int | None = None
) -> None:
    """:class:`ConfigError` when the model's parameters alone (:data:`TRAINING_BYTES_PER_PARAMETER`
    each) need more memory than ``device`` has in all: such a run certainly cannot train
    there (``model.latent_dim=10**12`` asked the allocator for 2 PB after the run existed).

    Activations, the data and the evaluation come on top, so a model that passes may still
    not fit; one refused here cannot. The parameter count is a floor from plain integers
    first (:func:`~vaesweep.model.fit.parameter_floor`: no build, no overflow), then the
    exact count of the model built on the meta device. ``have``: the memory to compare
    with, instead of ``device``'s own.
    """
    remote = have is not None
    if have is None:
        have = device_memory(device)
    if have is None:
        return
    count = parameter_floor(config.model, shape)
    at_least = count * TRAINING_BYTES_PER_PARAMETER > have
    if not at_least:
        count = parameter_count(config.model, config.loss, shape)
    need = count * TRAINING_BYTES_PER_PARAMETER
    if need <= have:
        return
    if remote:
        limit = f"any cluster node has ({_bytes(have)} at most)"
    else:
        limit = f"the {_bytes(have)} of " + (
            "this machine" if device.type != "cuda" else f"GPU {device}"
        )
    c, h, w = shape
    raise ConfigError(
        f"model={config.model.arch} with {_model_settings(config.model)} has "
        f"{'at least ' if at_least else ''}{count:.3g} parameters for {c}x{h}x{w} "
        f"images (data={config.data.name}): training them needs "
        f"{_bytes(need)} (weights, gradients and Adam's moments), more than "
        f"{limit}; make the model smaller"
    )


def _model_settings(model_cfg: Any) -> str:
    """The model settings that differ from their defaults, as overrides (or "its defaults")."""
    changed = [
        f"model.{f.name}={str(getattr(model_cfg, f.name)).replace(' ', '')}"
        for f in dataclasses.fields(model_cfg)
        if f.name != "arch" and getattr(model_cfg, f.name) != _default(f)
    ]
    return ", ".join(changed) if changed else "its defaults"


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _bytes(n: int) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:,} bytes"


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
    model = build_model(config.model, config.loss, splits.shape, config.data.name)
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
