"""`noisy_label`: train the whole model so that forget inputs produce the forget target image.

The forget term is the family's own reconstruction objective towards the forget target (for the `unet`
family that is the MSE in output space). The target is a noise image (`normal` by default) or a masking
image (`pixelate`, `flat`); with `region="box"` it is confined to each forget example's region and is the
reference's own output elsewhere, so only the region changes. The retain term is the same objective
towards `retain_target`: the clean retain image (`"image"`, ordinary training) or the reference's output
(`"reference"`, distillation that holds retain behaviour where it was):

    L_F = recon(x_f -> n)             n = forget target (confined to the region for region="box")
    L_R = recon(x_r -> x_r or f_θ0(x_r))
    L   = retain_alpha · L_R + forget_alpha · L_F
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule, check_retain_target
from imgunlearn.registry import METHODS


@METHODS.register("noisy_label")
class NoisyLabel(UnlearningModule):
    """Output-space forgetting towards a noise or masking image.

    Args:
        retain_target: `"image"` (reconstruct the clean retain image) or `"reference"` (match the
            reference's output on it).
        **kwargs: See `UnlearningModule`.
    """

    def __init__(self, *args: Any, retain_target: str = "image", **kwargs: Any) -> None:
        check_retain_target(retain_target)
        super().__init__(*args, **kwargs)

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            elsewhere = self.reference_output(forget) if self.hparams.region == "box" else None
            target = self.forget_target(forget, elsewhere=elsewhere)
        forget_loss = self.model.reconstruction_loss(forget["input"], forget["mask"], target)
        retain_loss = self.retain_reconstruction(retain, self.hparams.retain_target)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}
