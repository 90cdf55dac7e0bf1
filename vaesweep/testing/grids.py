"""The image grids of a fabricated run (reconstructions, prior samples, traversals), written
with the real grid writer so the report reads the layout a trained run leaves; kept apart from
:mod:`~vaesweep.testing.fabricate` because only these need torch."""

from __future__ import annotations

import math
from typing import Any

from vaesweep.record import RunRecord

#: The fabricated images: 8x8 grey, like the digits data.
SHAPE = (1, 8, 8)


def write_grids(record: RunRecord, share: float, kl_dims: list[float]) -> dict[str, Any]:
    """Grids through the real writer: originals fixed for every run, reconstructions shrunk
    towards the mean image by the share of variance the run leaves unexplained."""
    import torch

    from vaesweep.record.images import save_grid

    gen = torch.Generator().manual_seed(0)
    x = torch.rand((8, *SHAPE), generator=gen)
    mean = x.mean(0, keepdim=True)
    keep = math.sqrt(max(0.0, 1.0 - min(1.0, share)))
    layout = {
        "reconstructions": save_grid(
            record.path("reconstructions.png"), [x, mean + keep * (x - mean)]
        )
    }
    layout["reconstructions"]["val_index"] = list(range(8))
    noise = torch.rand((32, *SHAPE), generator=torch.Generator().manual_seed(1))
    samples = mean + keep * (noise - mean)
    layout["samples"] = save_grid(
        record.path("samples.png"), [samples[i : i + 8] for i in range(0, 32, 8)]
    )
    dims = sorted(range(len(kl_dims)), key=lambda j: -kl_dims[j])[:8]
    values = torch.linspace(-3, 3, 9)
    rows = [
        (x[:1] + 0.1 * min(1.0, kl_dims[j]) * values.view(-1, 1, 1, 1)).clamp(0, 1) for j in dims
    ]
    layout["traversals"] = save_grid(record.path("traversals.png"), rows)
    layout["traversals"].update(dims=dims, values=values.tolist())
    return layout
