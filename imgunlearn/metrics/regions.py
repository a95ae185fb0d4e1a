"""Which pixels a pixel metric looks at.

Every pixel metric takes `pixels` = `"image"` (all pixels), `"mask"` (the hidden pixels the model had to
fill in, 1 in the task's mask) or `"forget"` (the content to forget, e.g. the face box, 1 in the
example's `forget_mask`). Images whose selection is empty are left out of the average.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from imgunlearn.metrics.mean import ImageMean

PIXELS = ("image", "mask", "forget")


def check_pixels(pixels: str) -> str:
    if pixels not in PIXELS:
        raise ValueError(f"unknown pixels {pixels!r}; known: {', '.join(PIXELS)}")
    return pixels


def check_pair(preds: Tensor, target: Tensor) -> None:
    """Both `[B, C, H, W]`, same shape."""
    if preds.ndim != 4 or preds.shape != target.shape:
        raise ValueError(f"preds and target must both be [B, C, H, W] of one shape, got "
                         f"{tuple(preds.shape)} and {tuple(target.shape)}")


def selection(pixels: str, preds: Tensor, mask: Tensor | None, forget_mask: Tensor | None) -> Tensor:
    """The selected pixels as a float `[B, 1, H, W]` map (1 = selected)."""
    b, _, h, w = preds.shape
    if pixels == "image":
        return torch.ones(b, 1, h, w, device=preds.device, dtype=preds.dtype)
    chosen = mask if pixels == "mask" else forget_mask
    if chosen is None:
        name = "mask" if pixels == "mask" else "forget_mask"
        raise ValueError(f"a metric over pixels={pixels!r} needs the batch's {name!r}, got None")
    if chosen.shape != (b, 1, h, w):
        raise ValueError(f"{pixels} selection must be [B, 1, H, W] = {(b, 1, h, w)}, got {tuple(chosen.shape)}")
    return (chosen > 0.5).to(preds.dtype)


def per_image_mse(preds: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Mean squared error over each image's selected pixels (all channels).

    Returns:
        `(mse [B], valid [B] bool)`; images with an empty selection are not valid.
    """
    count = weight.sum(dim=(1, 2, 3))  # [B]
    squared = ((preds - target) ** 2 * weight).sum(dim=(1, 2, 3))  # [B]
    valid = count > 0
    mse = squared / (count.clamp(min=1) * preds.shape[1])
    return mse, valid


def bounding_box(selected: np.ndarray | Tensor) -> tuple[int, int, int, int] | None:
    """`(top, left, bottom, right)` (exclusive ends) of the ones in a `[H, W]` map, or None if empty."""
    selected = selected.cpu().numpy() if isinstance(selected, Tensor) else selected
    rows = np.flatnonzero(selected.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(selected.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def fills_box(selected: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """True if every pixel of `box` is selected, i.e. the selection is exactly that box."""
    top, left, bottom, right = box
    return bool(selected[top:bottom, left:right].all())


class RegionMetric(ImageMean):
    """Base of the pixel metrics: a per-image mean over the pixels that `pixels` selects.

    Args:
        pixels: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget content, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    def __init__(self, pixels: str = "image", **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixels = check_pixels(pixels)

    def _selected_mse(self, preds: Tensor, target: Tensor, mask: Tensor | None,
                      forget_mask: Tensor | None) -> Tensor:
        """MSE `[N]` in float64 over the selected pixels of each image whose selection is not empty."""
        check_pair(preds, target)
        weight = selection(self.pixels, preds, mask, forget_mask)
        mse, valid = per_image_mse(preds.double(), target.double(), weight.double())
        return mse[valid]
