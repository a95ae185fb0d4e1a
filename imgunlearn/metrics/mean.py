"""`ImageMean`: the base of metrics that average one value per image."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class ImageMean(Metric):
    """Sums per-image values in float64 and counts them; `compute` gives their mean, NaN before any image.

    Subclasses compute the values of a batch in `update` and pass them to `_add`.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, values: Tensor) -> None:
        """Add the per-image values `[N]` of a batch (N may be 0)."""
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count
