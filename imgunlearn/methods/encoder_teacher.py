"""The encoder-teacher method (Li et al., ICLR 2024).

Only the encoder is trained. On retain images its features follow the frozen original's; on forget images
they follow the original's features of the forget target (a noise image by default, or a masking image):

    L_R = mean((E_θ(x_r, m) - E_θ0(x_r, m))²)
    L_F = mean((E_θ(x_f, m) - E_θ0(n, m))²)
    L   = retain_alpha · L_R + forget_alpha · L_F

With several feature maps (skips, down-path outputs) the loss is the sum over maps of their mean squares
(`feature_weights="uniform"`, the paper's form). `feature_weights="normalized"` divides each map's term by the
mean square of the reference's retain features of that map, so a map's weight no longer depends on its scale
and a deep, small-valued bottleneck counts as much as a large full-resolution skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule
from imgunlearn.models.base import Latent
from imgunlearn.registry import METHODS

FEATURE_WEIGHTS = ("uniform", "normalized")


def as_maps(latent: Latent) -> list[Tensor]:
    return [latent] if isinstance(latent, Tensor) else list(latent)


def latent_mse(a: Latent, b: Latent, scales: list[Tensor] | None = None) -> Tensor:
    """Mean squared distance between two latents, summed over feature maps; each map divided by its scale."""
    a, b = as_maps(a), as_maps(b)
    scales = scales or [torch.ones(())] * len(a)
    return sum(torch.mean((x - y) ** 2) / s for x, y, s in zip(a, b, scales, strict=True))


@METHODS.register("encoder_teacher")
class EncoderTeacher(UnlearningModule):
    """Args:
        feature_weights: `uniform` (the paper) or `normalized` (each map scaled by its retain features' size).
        lr, warmup_steps, betas, weight_decay, region: See `UnlearningModule`. The defaults are the settings
            measured on the demo (BENCHMARKS.md, unet_small and the model families): the paper's AdamW betas and
            weight decay with warm-up, lr 1e-3, the normal-noise target confined to the face box.
        **kwargs: See `UnlearningModule`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "lr": FloatDistribution(3e-4, 3e-3, log=True),
        "forget_target": CategoricalDistribution(["normal", "flat"]),
        "forget_alpha": FloatDistribution(0.5, 4.0, log=True),
        "retain_alpha": FloatDistribution(0.5, 16.0, log=True),
        "feature_weights": CategoricalDistribution(["uniform", "normalized"]),
        "region": CategoricalDistribution(["box", "image"]),
    }
    """What `imgunlearn tune` searches (around the defaults above)."""

    encoder_only = True

    def __init__(self, *args: Any, feature_weights: str = "uniform", lr: float = 1e-3, warmup_steps: int = 25,
                 betas: Sequence[float] = (0.9, 0.95), weight_decay: float = 0.05, region: str = "box",
                 **kwargs: Any) -> None:
        if feature_weights not in FEATURE_WEIGHTS:
            raise ValueError(f"unknown feature_weights {feature_weights!r}; known: {', '.join(FEATURE_WEIGHTS)}")
        super().__init__(*args, lr=lr, warmup_steps=warmup_steps, betas=betas, weight_decay=weight_decay,
                         region=region, **kwargs)

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        seed = self.step_seed()
        with torch.no_grad():
            target = self.forget_target(forget)
            target_input = self.target_input(target, forget["mask"])
            forget_ref = self.reference.forget_reference_encode(target_input, forget["mask"], target, seed=seed)
            retain_ref = self.reference.encode(retain["input"], retain["mask"], target=retain["image"], seed=seed)
            scales = None
            if self.hparams.feature_weights == "normalized":
                scales = [m.pow(2).mean().clamp_min(1e-8) for m in as_maps(retain_ref)]
        forget_loss = latent_mse(self.model.encode(forget["input"], forget["mask"], target=forget["image"], seed=seed),
                                 forget_ref, scales)
        retain_loss = latent_mse(self.model.encode(retain["input"], retain["mask"], target=retain["image"], seed=seed),
                                 retain_ref, scales)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}
