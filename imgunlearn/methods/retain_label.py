"""`retain_label`: train the whole model so that forget inputs produce (random) retain images.

Each step every forget example is paired with a retain image drawn at random (with replacement, from the
method's seed and the step) from the retain batch, so the two batches may differ in size. The forget term
is an MSE in output space; with `region="box"` the retain image shows only inside the forget example's
region (its patch at the same place), the kept image elsewhere, and the loss is the mean inside plus the
mean outside (see `noisy_label`, also for `retain_target`):

    L_F = mse(f_θ(x_f), x_r[π])       π: random pairing; confined to the region for region="box"
    L_R = recon(x_r -> x_r or f_θ0(x_r))
    L   = retain_alpha · L_R + forget_alpha · L_F

`forget_target` is not used: the retain images are the target.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule, check_retain_target
from imgunlearn.methods.targets import confine
from imgunlearn.registry import METHODS


@METHODS.register("retain_label")
class RetainLabel(UnlearningModule):
    """Forget inputs relabelled with retain images.

    Args:
        retain_target: `"image"` or `"reference"`: what kept content is trained towards.
        lr, region, retain_alpha: See `UnlearningModule`. The defaults are the settings measured on the demo
            (BENCHMARKS.md, every method on the demo setting).
        **kwargs: See `UnlearningModule`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "lr": FloatDistribution(1e-4, 3e-3, log=True),
        "retain_alpha": FloatDistribution(2.0, 64.0, log=True),
        "region": CategoricalDistribution(["box", "image"]),
    }
    """What `imgunlearn tune` searches (around the defaults above)."""

    def __init__(self, *args: Any, retain_target: str = "image", lr: float = 3e-4, region: str = "box",
                 retain_alpha: float = 8.0, **kwargs: Any) -> None:
        check_retain_target(retain_target)
        super().__init__(*args, lr=lr, region=region, retain_alpha=retain_alpha, **kwargs)

    def retain_images_for(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> Tensor:
        """One randomly drawn retain image per forget example, `[B_f, 3, H, W]`."""
        if forget["image"].shape[1:] != retain["image"].shape[1:]:
            raise ValueError(f"retain_label needs forget and retain images of one shape, got "
                             f"{tuple(forget['image'].shape[1:])} and {tuple(retain['image'].shape[1:])}")
        count, pool = forget["image"].shape[0], retain["image"].shape[0]
        index = torch.randint(0, pool, (count,), generator=self.generator(stream=2))
        return retain["image"][index.to(retain["image"].device)]

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            target = self.retain_images_for(forget, retain)
            if self.hparams.region == "box":
                target = confine(target, self.kept_image(forget, self.hparams.retain_target), forget["forget_mask"])
        output = self.model_output(forget, target, seed=self.step_seed())
        forget_loss = self.output_mse(output, target, forget["forget_mask"])
        retain_loss = self.retain_reconstruction(retain, self.hparams.retain_target)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}
