"""Forget targets: the images a forgotten input should turn into.

`normal`, `uniform` and `constant` are the noise images of the encoder-teacher paper; `pixelate` and `flat`
are masking targets a user may prefer to see in place of a forgotten image. Each maps a clean batch
`[B, 3, H, W]` in [0, 1] to a target batch of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

FORGET_TARGETS = ("normal", "uniform", "constant", "pixelate", "flat")


def masking_target(
    kind: str,
    image: Tensor,
    generator: torch.Generator | None = None,
    flat_color: Sequence[float] = (0.5, 0.5, 0.5),
    pixelate_block: int = 8,
) -> Tensor:
    """The forget target of `kind` for a clean batch `image`.

    - `normal`: `clamp(randn · std(batch) + mean(batch), 0, 1)`.
    - `uniform`: uniform noise in [0, 1].
    - `constant`: the batch mean everywhere.
    - `pixelate`: blocks of `pixelate_block` pixels, each the mean of the image under it.
    - `flat`: `flat_color` (RGB in [0, 1]) everywhere.
    """
    if kind == "normal":
        noise = torch.randn(image.shape, generator=generator).to(image)
        return (noise * image.std() + image.mean()).clamp(0.0, 1.0)
    if kind == "uniform":
        return torch.rand(image.shape, generator=generator).to(image)
    if kind == "constant":
        return torch.full_like(image, float(image.mean()))
    if kind == "pixelate":
        if pixelate_block < 1:
            raise ValueError(f"pixelate_block must be >= 1, got {pixelate_block}")
        h, w = image.shape[-2:]
        coarse = F.avg_pool2d(image, pixelate_block, ceil_mode=True)  # [B, 3, H/k, W/k]
        # each block back to its own pixels (nearest interpolation would shift rows when the side is not a
        # multiple of the block); edge blocks are cut by the border
        blocks = coarse.repeat_interleave(pixelate_block, dim=-2).repeat_interleave(pixelate_block, dim=-1)
        return blocks[..., :h, :w].contiguous()
    if kind == "flat":
        if len(flat_color) != image.shape[1] or not all(0.0 <= c <= 1.0 for c in flat_color):
            raise ValueError(f"flat_color must give {image.shape[1]} values in [0, 1], got {list(flat_color)}")
        color = torch.tensor(list(flat_color), dtype=image.dtype, device=image.device)
        return color.view(1, -1, 1, 1).expand_as(image).clone()
    raise ValueError(f"unknown forget target {kind!r}; known: {', '.join(FORGET_TARGETS)}")


def confine(target: Tensor, elsewhere: Tensor, region: Tensor) -> Tensor:
    """`target` inside `region` (`[B, 1, H, W]`, 1 = forget) and `elsewhere` outside it."""
    return region * target + (1.0 - region) * elsewhere
