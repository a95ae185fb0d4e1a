"""The encoder-teacher method (Li et al., ICLR 2024).

Only the encoder is trained. On retain images its features follow the frozen original's; on forget images
they follow the original's features of the forget target (a noise image by default, or a masking image):

    L_R = mean((E_θ(x_r, m) - E_θ0(x_r, m))²)
    L_F = mean((E_θ(x_f, m) - E_θ0(n, m))²)
    L   = retain_alpha · L_R + forget_alpha · L_F

With several feature maps (skips, down-path outputs) the loss is the sum over maps of their mean squares.
"""

from __future__ import annotations

import torch
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule
from imgunlearn.models.base import Latent
from imgunlearn.registry import METHODS


def latent_mse(a: Latent, b: Latent) -> Tensor:
    """Mean squared distance between two latents, summed over feature maps when they are lists."""
    if isinstance(a, Tensor):
        return torch.mean((a - b) ** 2)
    return sum(torch.mean((x - y) ** 2) for x, y in zip(a, b, strict=True))


@METHODS.register("encoder_teacher")
class EncoderTeacher(UnlearningModule):
    encoder_only = True

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        seed = self.step_seed()
        with torch.no_grad():
            target = self.forget_target(forget)
            target_input = self.target_input(target, forget["mask"])
            forget_ref = self.reference.forget_reference_encode(target_input, forget["mask"], target, seed=seed)
            retain_ref = self.reference.encode(retain["input"], retain["mask"], target=retain["image"], seed=seed)
        forget_loss = latent_mse(self.model.encode(forget["input"], forget["mask"], target=forget["image"], seed=seed),
                                 forget_ref)
        retain_loss = latent_mse(self.model.encode(retain["input"], retain["mask"], target=retain["image"], seed=seed),
                                 retain_ref)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}
