"""What a finished run writes besides its metrics: image grids and the IWAE estimate.

``reconstructions.png`` shows the same validation images in every run, ``samples.png`` decodes
the same prior noise (:data:`SAMPLE_SEED`), and ``traversals.png`` sweeps the most informative
latent dimensions over [-3, 3]; their layouts go into ``summary.json["images"]``.
"""

from __future__ import annotations

from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.data import Splits
from vaesweep.model import VAE
from vaesweep.record import RunRecord, contract
from vaesweep.record.images import save_grid
from vaesweep.training.evaluate import iwae_estimate, to_unit

#: Seed of the prior noise decoded in samples.png: the same draws in every run.
SAMPLE_SEED = 12345
TRAVERSAL_DIMS = 8
TRAVERSAL_STEPS = 9


def final_kl(rows: list[dict[str, Any]]) -> list[float]:
    val = [r for r in rows if r["split"] == "val"] or rows
    last = val[-1]
    dims = sorted(
        (k for k in last if k.startswith(contract.KL_DIM_PREFIX)),
        key=lambda k: int(k[len(contract.KL_DIM_PREFIX) :]),
    )
    return [float(last[k]) for k in dims]


@torch.no_grad()
def write_images(
    model: VAE, record: RunRecord, splits: Splits, device: torch.device, config: Config
) -> dict[str, Any]:
    gen = torch.Generator(device=device).manual_seed(SAMPLE_SEED)
    n = min(config.eval.n_recon, len(splits.val))
    x = to_unit(splits.val.images[:n].to(device), "none", None)
    layout = {
        "reconstructions": save_grid(
            record.path(contract.RECONSTRUCTIONS_FILE), [x, model.reconstruct(x)]
        )
    }
    layout["reconstructions"]["val_index"] = list(range(n))
    z = torch.randn((config.eval.n_samples, model.latent_dim), generator=gen, device=device)
    per_row = 8
    samples = model.sample(z)
    layout["samples"] = save_grid(
        record.path(contract.SAMPLES_FILE),
        [samples[i : i + per_row] for i in range(0, len(samples), per_row)],
    )
    kl = final_kl(record.rows)
    dims = sorted(range(len(kl)), key=lambda j: -kl[j])[:TRAVERSAL_DIMS]
    mu, _ = model.encode(x[:1])
    values = torch.linspace(-3, 3, TRAVERSAL_STEPS, device=device)
    rows = []
    for j in dims:
        zt = mu.repeat(TRAVERSAL_STEPS, 1)
        zt[:, j] = values
        rows.append(model.sample(zt))
    layout["traversals"] = save_grid(record.path(contract.TRAVERSALS_FILE), rows)
    layout["traversals"].update(dims=dims, values=values.tolist())
    return layout


def final_iwae(
    model: VAE, splits: Splits, device: torch.device, config: Config, seed: int
) -> dict[str, Any] | None:
    """The IWAE bound on ``eval.split`` (val, or test where the dataset has one)."""
    k = config.eval.iwae_samples
    if k <= 0:
        return None
    split_name = config.eval.split
    data = splits.test if split_name == "test" and splits.test is not None else splits.val
    if split_name == "test" and splits.test is None:
        split_name = "val"
    images = data.images[: config.eval.iwae_images].to(device)
    out = iwae_estimate(model, images, k, binarize=config.data.binarize, seed=seed)
    return {**out, "split": split_name}


@torch.no_grad()
def preview_grids(model: VAE, val_u8: torch.Tensor, config: Config) -> dict[str, Any]:
    """The reconstructions and samples grids as uint8 arrays (H, W, C), for the trackers.

    The same images, noise and layout as :func:`write_images`, so the last epoch's grids are
    the record's PNGs. Uses its own generator and puts the model back in the mode it was in:
    showing progress never changes what is trained.
    """
    from vaesweep.record.images import grid_array, upscale_factor

    was_training = model.training
    model.eval()
    try:
        device = val_u8.device
        n = min(config.eval.n_recon, len(val_u8))
        x = to_unit(val_u8[:n], "none", None)
        gen = torch.Generator(device=device).manual_seed(SAMPLE_SEED)
        z = torch.randn((config.eval.n_samples, model.latent_dim), generator=gen, device=device)
        samples = model.sample(z)
        per_row = 8
        scale = upscale_factor(int(x.shape[2]), int(x.shape[3]))
        grids = {
            "reconstructions": [x, model.reconstruct(x)],
            "samples": [samples[i : i + per_row] for i in range(0, len(samples), per_row)],
        }
        return {k: grid_array(rows, scale).numpy() for k, rows in grids.items()}
    finally:
        model.train(was_training)
