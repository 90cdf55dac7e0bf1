"""What a finished run adds besides its metrics: image grids and the IWAE estimate.

``reconstructions`` shows the same validation images in every run, ``samples`` decodes the
same prior noise (:data:`SAMPLE_SEED`), and ``traversals`` sweeps the most informative latent
dimensions over [-3, 3]. The grids are returned as rows of images in [0, 1]; the run writes
them (:func:`vaesweep.record.images.save_grid`) and their layouts go into
``summary.json["images"]``. The IWAE bound is Burda et al. 2016.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.data import Splits
from vaesweep.evaluation.metrics import iwae_estimates, to_unit
from vaesweep.model import VAE

#: Seed of the prior noise decoded in samples.png: the same draws in every run.
SAMPLE_SEED = 12345
TRAVERSAL_DIMS = 8
TRAVERSAL_STEPS = 9


@dataclass
class ImageGrid:
    """Rows of images (n, C, H, W) in [0, 1] and what the layout records besides them."""

    rows: list[torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def preview_grids(
    model: VAE, val_images: torch.Tensor, device: torch.device, config: Config
) -> dict[str, ImageGrid]:
    """``{"reconstructions", "samples"}``: the first validation images (uint8 ``val_images``)
    and the fixed prior noise (:data:`SAMPLE_SEED`) through ``model`` as it is now.

    The same grids as :func:`image_grids` draws at the end, so the trackers can show them
    during training; its own generator leaves the training's random streams alone.
    """
    gen = torch.Generator(device=device).manual_seed(SAMPLE_SEED)
    n = min(config.eval.n_recon, len(val_images))
    x = to_unit(val_images[:n].to(device), "none", None)
    grids = {"reconstructions": ImageGrid([x, model.reconstruct(x)], {"val_index": list(range(n))})}
    z = torch.randn((config.eval.n_samples, model.latent_dim), generator=gen, device=device)
    per_row = 8
    samples = model.sample(z)
    grids["samples"] = ImageGrid(
        [samples[i : i + per_row] for i in range(0, len(samples), per_row)]
    )
    return grids


@torch.no_grad()
def image_grids(
    model: VAE, splits: Splits, device: torch.device, config: Config, kl_per_dim: list[float]
) -> dict[str, ImageGrid]:
    """``{"reconstructions", "samples", "traversals"}`` grids of a trained model."""
    grids = preview_grids(model, splits.val.images, device, config)
    x = grids["reconstructions"].rows[0]
    dims = sorted(range(len(kl_per_dim)), key=lambda j: -kl_per_dim[j])[:TRAVERSAL_DIMS]
    mu, _ = model.encode(x[:1])
    values = torch.linspace(-3, 3, TRAVERSAL_STEPS, device=device)
    rows = []
    for j in dims:
        zt = mu.repeat(TRAVERSAL_STEPS, 1)
        zt[:, j] = values
        rows.append(model.sample(zt))
    grids["traversals"] = ImageGrid(rows, {"dims": dims, "values": values.tolist()})
    return grids


def final_iwae(
    model: VAE,
    splits: Splits,
    device: torch.device,
    config: Config,
    seed: int,
    calib_mse: float | None = None,
    interrupt: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """The IWAE bound on ``eval.split`` (val, or test where the dataset has one).

    ``calib_mse`` (the run's final validation MSE per pixel): for ``mse`` runs, the bound with
    the decoder read as a Gaussian of that variance goes in ``out["calibrated"]``; the bound at
    sigma^2 = 1/2 (what beta = 1 assumes) is far from any useful density for such runs.
    """
    k = config.eval.iwae_samples
    if k <= 0:
        return None
    split_name = config.eval.split
    data = splits.test if split_name == "test" and splits.test is not None else splits.val
    if split_name == "test" and splits.test is None:
        split_name = "val"
    images = data.images[: config.eval.iwae_images].to(device)
    scorings: tuple[float | None, ...] = (None,)
    if config.loss.likelihood == "mse" and calib_mse is not None and calib_mse > 0:
        scorings = (None, float(calib_mse))
    # One pass of the model for both bounds: the same draws, scored two ways.
    out, *cal = iwae_estimates(
        model,
        images,
        k,
        binarize=config.data.binarize,
        seed=seed,
        scorings=scorings,
        interrupt=interrupt,
    )
    result: dict[str, Any] = {**out, "split": split_name}
    if cal:
        result["calibrated"] = {"nll": cal[0]["nll"], "bpd": cal[0]["bpd"], "sigma2": scorings[1]}
    return result
