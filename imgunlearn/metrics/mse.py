"""`MSE`: mean squared error over the whole image, the hidden pixels or the forget content."""

from __future__ import annotations

from torch import Tensor

from imgunlearn.metrics.regions import RegionMetric


class MSE(RegionMetric):
    """Mean over images of the per-image mean squared error (pixel values in [0, 1]).

    Args:
        pixels: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget content, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    higher_is_better = False

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add a batch of outputs `preds` and ground truths `target`, both `[B, C, H, W]` in [0, 1]."""
        self._add(self._selected_mse(preds, target, mask, forget_mask))
