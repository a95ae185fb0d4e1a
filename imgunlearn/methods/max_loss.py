"""`max_loss`: gradient ascent on the forget reconstruction error, descent on the retain loss (whole model).

Plain ascent is unbounded: the error can grow without limit and wreck the model. Here the ascent stops once
the forget error (an MSE in output space on [0, 1] images, for every family) reaches `forget_bound`: the
term is a hinge, so it and its gradient are zero beyond the bound. The default 0.05 is about 13 dB PSNR.

    E_F = mse(f_θ(x_f), x_f)
    L_F = relu(forget_bound - E_F)
    L_R = recon(x_r -> x_r or f_θ0(x_r))
    L   = retain_alpha · L_R + forget_alpha · L_F

With `region="box"` the error is measured inside each forget example's region only, and outside it the
output is held to the kept image (the clean image, or the reference's output with
`retain_target="reference"`): `L_F = relu(forget_bound - E_F,region) + mse_outside(f_θ(x_f), kept)`.
For the diffusion family the output is the one-step estimate of `x_f` (see `UnlearningModule.model_output`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule, check_retain_target, masked_mse
from imgunlearn.registry import METHODS


@METHODS.register("max_loss")
class MaxLoss(UnlearningModule):
    """Bounded gradient ascent on the forget set.

    Args:
        forget_bound: The forget MSE beyond which the ascent stops.
        retain_target: `"image"` or `"reference"`: what kept content is trained towards.
        lr, region, retain_alpha: See `UnlearningModule`. The defaults (with `forget_bound` 0.1) are the settings
            measured on the demo (BENCHMARKS.md, every method on the demo setting).
        **kwargs: See `UnlearningModule`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "lr": FloatDistribution(1e-4, 3e-3, log=True),
        "forget_bound": FloatDistribution(0.02, 0.5, log=True),
        "retain_alpha": FloatDistribution(2.0, 64.0, log=True),
        "region": CategoricalDistribution(["box", "image"]),
    }
    """What `imgunlearn tune` searches (around the defaults above)."""

    def __init__(self, *args: Any, forget_bound: float = 0.1, retain_target: str = "image", lr: float = 3e-4,
                 region: str = "box", retain_alpha: float = 8.0, **kwargs: Any) -> None:
        if not forget_bound > 0 or forget_bound == float("inf"):
            raise ValueError(f"forget_bound must be positive, got {forget_bound}")
        check_retain_target(retain_target)
        super().__init__(*args, lr=lr, region=region, retain_alpha=retain_alpha, **kwargs)

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        hp = self.hparams
        output = self.model_output(forget, forget["image"], seed=self.step_seed())
        if hp.region == "box":
            region = forget["forget_mask"]
            forget_error = masked_mse(output, forget["image"], region)
            hold = masked_mse(output, self.kept_image(forget, hp.retain_target), 1.0 - region)
            forget_loss = torch.relu(hp.forget_bound - forget_error) + hold
        else:
            forget_error = torch.mean((output - forget["image"]) ** 2)
            forget_loss = torch.relu(hp.forget_bound - forget_error)
        retain_loss = self.retain_reconstruction(retain, hp.retain_target)
        loss = hp.retain_alpha * retain_loss + hp.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "forget_error": forget_error.detach(),
                "retain_loss": retain_loss}
