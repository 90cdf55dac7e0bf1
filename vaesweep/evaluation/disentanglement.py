"""Disentanglement metrics of a trained model on a dataset with known factors.

A trained encoder is the representation the metrics score.

The metrics (:mod:`vaesweep.disentanglement`) ask for the codes of chosen factor combinations;
here those combinations are rendered by the dataset's factor grid, scaled to [0, 1] like the
training images, and encoded to the means of q(z|x) (Locatello et al. 2019 score the means).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from vaesweep.data import Splits
from vaesweep.data.factors import FactorGrid
from vaesweep.disentanglement.settings import MetricSettings, resolve
from vaesweep.model.vae import VAE

#: Images encoded per forward pass (the encoder only, without gradients).
ENCODE_BATCH = 1024


def encoder_means(
    model: VAE, grid: FactorGrid, device: torch.device, batch: int = ENCODE_BATCH
) -> Callable[[np.ndarray], np.ndarray]:
    """classes (n, K) -> the means of q(z|x) (n, M) float64 of the images with those factors."""
    if grid.render is None:
        raise ValueError("the factor grid cannot render images")
    render = grid.render

    @torch.no_grad()
    def represent(classes: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(classes), batch):
            images = render(classes[start : start + batch])
            x = images.to(device=device, dtype=torch.float32).mul_(1.0 / 255.0)
            mu, _ = model.encode(x)
            out.append(mu.to("cpu", torch.float64).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.latent_dim))

    return represent


def dataset_means(
    model: VAE, images: torch.Tensor, device: torch.device, batch: int = ENCODE_BATCH
) -> np.ndarray:
    """Means of q(z|x) (N, M) for uint8 images (N, C, H, W), for grids that cannot render."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images[start : start + batch].to(device=device, dtype=torch.float32) / 255.0
            out.append(model.encode(x)[0].to("cpu", torch.float64).numpy())
    return np.concatenate(out)


class _Lookup:
    """Codes of an incomplete grid: the means of the dataset's own images, looked up."""

    def __init__(self, grid: FactorGrid, factors: np.ndarray, codes: np.ndarray) -> None:
        self.grid = grid
        self.row = dict(zip(grid.flat_index(factors).tolist(), range(len(factors))))
        self.codes = codes

    def __call__(self, classes: np.ndarray) -> np.ndarray:
        flat = self.grid.flat_index(classes).tolist()
        return self.codes[[self.row[f] for f in flat]]


def measure_disentanglement(
    model: VAE,
    grid: FactorGrid,
    device: torch.device,
    settings: MetricSettings,
    images: torch.Tensor | None = None,
    factors: torch.Tensor | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Every disentanglement metric of ``model``'s means on ``grid`` (see
    :func:`vaesweep.disentanglement.evaluate`). A grid that cannot render (a partial npz) is
    scored on ``images`` with their ``factors``: every combination it samples is one of them.
    """
    from vaesweep.disentanglement.evaluate import evaluate  # scikit-learn: only when scoring

    model.eval()
    if grid.render is not None:
        represent = encoder_means(model, grid, device)
    else:
        if images is None or factors is None:
            raise ValueError("a grid without a renderer needs the images and their factors")
        f = factors.numpy()
        grid = replace(grid, present=np.unique(grid.flat_index(f)))
        represent = _Lookup(grid, f, dataset_means(model, images, device))
    return evaluate(grid, represent, settings, log=log)


def final_disentanglement(
    model: VAE, splits: Splits, device: torch.device, preset: str
) -> dict | None:
    """The end-of-run metrics (``disentanglement.json``) under ``eval.disentanglement=preset``,
    or None for a dataset without factors or ``off``. ``settings.preset`` records the choice."""
    grid = splits.grid
    if grid is None:
        return None
    chosen = resolve(preset, grid.total if grid.present is None else len(grid.present))
    if chosen is None:
        return None
    name, settings = chosen
    images = factors = None
    if grid.render is None:  # only the loaded images exist: score on train + val
        images = torch.cat([splits.train.images, splits.val.images])
        assert splits.train.factors is not None and splits.val.factors is not None
        factors = torch.cat([splits.train.factors, splits.val.factors])
    start = time.perf_counter()
    result = measure_disentanglement(model, grid, device, settings, images, factors)
    result["settings"]["preset"] = name
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    return result


#: A latent is said to carry a factor when it holds at least this share of the factor's entropy.
CARRIES = 0.1


def summary_entry(result: dict) -> dict:
    """What ``summary.json["disentanglement"]`` keeps of a result: the scores, and per factor
    the latent sharing the most information with it (None when no latent holds
    :data:`CARRIES` of its entropy)."""
    mig = result["metrics"].get("mig", {})
    top = None
    if "normalised_mutual_information" in mig:
        nmi = np.nan_to_num(np.asarray(mig["normalised_mutual_information"], dtype=float))
        top = [int(j) if nmi[j, k] >= CARRIES else None for k, j in enumerate(nmi.argmax(0))]
    return {
        **result["scores"],
        "preset": result["settings"].get("preset"),
        "factors": result["factors"],
        "top_latent": top,
        "seconds": result["seconds"].get("total"),
    }
