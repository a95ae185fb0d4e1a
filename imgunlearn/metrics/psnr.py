"""`PSNR`: peak signal-to-noise ratio over the whole image, the hidden pixels or the forget content."""

from __future__ import annotations

import torch
from torch import Tensor

from imgunlearn.metrics.regions import RegionMetric

MIN_MSE = 1e-10
"""Floor of the per-image MSE, so identical images give 100 dB rather than infinity."""


class PSNR(RegionMetric):
    """Mean over images of `10 · log10(1 / MSE)`, the MSE taken over each image's selected pixels only.

    Pixel values are in [0, 1] (data range 1). A selection's PSNR is computed from the squared error of the
    selected pixels alone, so the rest of the image does not dilute it.

    Args:
        pixels: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget content, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    higher_is_better = True

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add a batch of outputs `preds` and ground truths `target`, both `[B, C, H, W]` in [0, 1]."""
        self._add(psnr_of_mse(self._selected_mse(preds, target, mask, forget_mask)))


def psnr_of_mse(mse: Tensor) -> Tensor:
    """`10 · log10(1 / mse)` for pixel values in [0, 1]; identical images (mse below `MIN_MSE`) give 100 dB."""
    return -10.0 * torch.log10(mse.clamp(min=MIN_MSE))
