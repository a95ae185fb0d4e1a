"""`MSE`: mean squared error over the whole image, the hidden pixels or the forget region."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from imgunlearn.metrics.regions import check_pair, check_region, per_image_mse, selection


class MSE(Metric):
    """Mean over images of the per-image mean squared error (pixel values in [0, 1]).

    Args:
        region: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget region, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    is_differentiable = False
    higher_is_better = False
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
        self.total += mse[valid].sum()
        self.count += valid.sum()

    def compute(self) -> Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count
