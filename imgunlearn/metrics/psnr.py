"""`PSNR`: peak signal-to-noise ratio over the whole image, the hidden pixels or the forget region."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from imgunlearn.metrics.regions import check_pair, check_region, per_image_mse, selection

MIN_MSE = 1e-10
"""Floor of the per-image MSE, so identical images give 100 dB rather than infinity."""


class PSNR(Metric):
    """Mean over images of `10 · log10(1 / MSE)`, the MSE taken over each image's selected pixels only.

    Pixel values are in [0, 1] (data range 1). A region's PSNR is computed from the squared error of the
    region's pixels alone, so the rest of the image does not dilute it.

    Args:
        region: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget region, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, region: str = "image", **kwargs) -> None:
        super().__init__(**kwargs)
        self.region = check_region(region)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None, region: Tensor | None = None) -> None:
        """Add a batch of outputs `preds` and ground truths `target`, both `[B, C, H, W]` in [0, 1]."""
        check_pair(preds, target)
        weight = selection(self.region, preds, mask, region)
        mse, valid = per_image_mse(preds.double(), target.double(), weight.double())
        psnr = -10.0 * torch.log10(mse.clamp(min=MIN_MSE))
        self.total += psnr[valid].sum()
        self.count += valid.sum()

    def compute(self) -> Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count
