"""`max_loss`: gradient ascent on the forget reconstruction loss, descent on the retain loss (whole model).

Plain ascent is unbounded: the loss can grow without limit and wreck the model. Here the ascent stops once
the forget loss reaches `forget_bound` (a hinge, so the term and its gradient are zero beyond the bound):

    L_F = relu(forget_bound - recon(x_f -> x_f))
    L_R = recon(x_r -> x_r)            (or -> f_θ0(x_r) with retain_target="reference")
    L   = retain_alpha · L_R + forget_alpha · L_F

`forget_bound` is in the units of the family's reconstruction loss (for the `unet` family an MSE on
[0, 1] images: 0.05 is about 13 dB PSNR). With `region="box"` the ascent uses only the error inside each
forget example's region, and outside it the output is held to the reference's output:

    L_F = relu(forget_bound - mse_region(f_θ(x_f), x_f)) + mse_outside(f_θ(x_f), f_θ0(x_f))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule, check_retain_target
from imgunlearn.registry import METHODS


def masked_mse(a: Tensor, b: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error over the pixels where `weight` (`[B, 1, H, W]`) is 1; 0 when it is empty."""
    total = weight.sum() * a.shape[1]
    return (weight * (a - b) ** 2).sum() / total.clamp_min(1.0)


@METHODS.register("max_loss")
class MaxLoss(UnlearningModule):
    """Bounded gradient ascent on the forget set.

    Args:
        forget_bound: The forget loss beyond which the ascent stops.
        retain_target: `"image"` or `"reference"` (see `noisy_label`).
        **kwargs: See `UnlearningModule`.
    """

    def __init__(self, *args: Any, forget_bound: float = 0.05, retain_target: str = "image", **kwargs: Any) -> None:
        if forget_bound <= 0:
            raise ValueError(f"forget_bound must be positive, got {forget_bound}")
        check_retain_target(retain_target)
        super().__init__(*args, **kwargs)

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        bound = self.hparams.forget_bound
        if self.hparams.region == "box":
            region = forget["region"]
            output = self.model(forget["input"], forget["mask"])
            forget_error = masked_mse(output, forget["image"], region)
            hold = masked_mse(output, self.reference_output(forget), 1.0 - region)
            forget_loss = torch.relu(bound - forget_error) + hold
        else:
            forget_error = self.model.reconstruction_loss(forget["input"], forget["mask"], forget["image"])
            forget_loss = torch.relu(bound - forget_error)
        retain_loss = self.retain_reconstruction(retain, self.hparams.retain_target)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "forget_error": forget_error.detach(), "retain_loss": retain_loss}
