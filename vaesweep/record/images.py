"""PNG grids of images: reconstructions, prior samples, latent traversals.

Cells are laid out edge to edge with no padding, each upscaled by an integer factor so small
images (8x8 digits) stay visible; ``summary.json["images"]`` records rows, columns and cell
size so the report can cut a grid back into its cells.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from vaesweep.record.files import atomic_write_bytes

#: Smallest cell side in pixels after upscaling.
MIN_CELL = 48


def upscale_factor(height: int, width: int) -> int:
    return max(1, math.ceil(MIN_CELL / min(height, width)))


def grid_array(rows: list[torch.Tensor], scale: int) -> torch.Tensor:
    """Rows of images (n, C, H, W) in [0, 1] -> uint8 (R*H*s, n*W*s, C) in one array."""
    n = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    canvas = torch.zeros(len(rows), n, c, h, w)
    for i, r in enumerate(rows):
        canvas[i, : len(r)] = r.detach().float().cpu().clamp(0, 1)
    # (R, n, C, H, W) -> (R*H, n*W, C)
    img = canvas.permute(0, 3, 1, 4, 2).reshape(len(rows) * h, n * w, c)
    if scale > 1:
        img = img.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return (img * 255).round().to(torch.uint8)


def save_grid(path: Path, rows: list[torch.Tensor]) -> dict[str, Any]:
    """Write a PNG grid atomically; return its layout for summary.json."""
    from PIL import Image

    h, w = rows[0].shape[2:]
    scale = upscale_factor(int(h), int(w))
    arr = grid_array(rows, scale).numpy()
    mode = "L" if arr.shape[2] == 1 else "RGB"
    image = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return {"rows": len(rows), "cols": max(len(r) for r in rows), "cell": [h * scale, w * scale]}
