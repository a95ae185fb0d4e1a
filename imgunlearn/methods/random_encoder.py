"""`random_encoder`: push the encoder's features of forget images to fixed random vectors (encoder only).

For every feature map of the latent there is one random tensor `z` of the map's shape `[C, ...]`, drawn
from the method's seed, the map's index and shape (the same at every step) and shared by all forget
examples. It is scaled to the reference's feature statistics on the forget batch, so the target lives on
the scale the decoder expects in every family.
The retain term is the encoder-teacher's: the encoder's features follow the frozen reference's.

    L_F = Σ_maps mean((E_θ(x_f) - (mean(E_θ0(x_f)) + std(E_θ0(x_f)) · z))²)
    L_R = Σ_maps mean((E_θ(x_r) - E_θ0(x_r))²)
    L   = retain_alpha · L_R + forget_alpha · L_F

With `region="box"` the random target applies inside the region (resized to each map's resolution) and
the reference's features of the same input elsewhere; this needs spatial maps `[B, C, h, w]`.
`forget_target` is not used.
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule
from imgunlearn.methods.encoder_teacher import as_maps, latent_mse
from imgunlearn.methods.targets import confine
from imgunlearn.models.base import ImageToImageModel
from imgunlearn.registry import METHODS

PROBE_SIDE = 64


def check_spatial(latent: list[Tensor], model_name: str) -> None:
    for feature in latent:
        if feature.dim() != 4:
            raise ValueError(f"random_encoder with region='box' needs spatial feature maps [B, C, h, w]; "
                             f"{model_name} encodes a map of shape {tuple(feature.shape)}")


@METHODS.register("random_encoder")
class RandomEncoder(UnlearningModule):
    """Args:
        lr, region: See `UnlearningModule`. The defaults are the settings measured on the demo (BENCHMARKS.md,
            every method on the demo setting); families without spatial feature maps (mae) need `region="image"`.
        **kwargs: See `UnlearningModule`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "lr": FloatDistribution(3e-4, 3e-3, log=True),
        "region": CategoricalDistribution(["box", "image"]),
    }
    """What `imgunlearn tune` searches (around the defaults above)."""

    encoder_only = True

    def __init__(self, *args: Any, lr: float = 1e-3, region: str = "box", **kwargs: Any) -> None:
        super().__init__(*args, lr=lr, region=region, **kwargs)

    def check_model(self, model: ImageToImageModel) -> None:
        """With `region="box"`, refuse families whose latent is not spatial (e.g. `mae`'s tokens `[B, L, D]`).

        The latent's layout is probed by encoding one blank 64×64 image; a family that cannot encode that
        size is checked at the first step instead.
        """
        if self.hparams.region != "box":
            return
        blank, training = torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE), model.training
        try:
            with torch.no_grad():
                latent = as_maps(model.eval().encode(blank, blank[:, :1], target=blank, seed=0))
        except ValueError:
            return
        finally:
            model.train(training)
        check_spatial(latent, model.config.get("name", type(model).__name__))

    def random_vector(self, index: int, shape: torch.Size, like: Tensor) -> Tensor:
        """The fixed standard-normal target of map `index` of `shape` (batch excluded), the same at every step."""
        key = zlib.crc32(f"{self.hparams.seed}:{index}:{tuple(shape)}".encode())
        return torch.randn(shape, generator=torch.Generator().manual_seed(key)).to(like)

    def random_targets(self, reference: list[Tensor], region: Tensor) -> list[Tensor]:
        box = self.hparams.region == "box"
        if box:
            check_spatial(reference, self.model.config.get("name", type(self.model).__name__))
        targets = []
        for index, feature in enumerate(reference):
            z = self.random_vector(index, feature.shape[1:], feature)
            target = (feature.mean() + feature.std() * z).expand_as(feature)
            if box:
                target = confine(target, feature, F.interpolate(region, size=feature.shape[-2:], mode="area"))
            targets.append(target)
        return targets

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        seed = self.step_seed()

        def encode(encoder: ImageToImageModel, batch: dict[str, Tensor]) -> list[Tensor]:
            return as_maps(encoder.encode(batch["input"], batch["mask"], target=batch["image"], seed=seed))

        with torch.no_grad():
            forget_targets = self.random_targets(encode(self.reference, forget), forget["forget_mask"])
            retain_ref = encode(self.reference, retain)
        forget_loss = latent_mse(encode(self.model, forget), forget_targets)
        retain_loss = latent_mse(encode(self.model, retain), retain_ref)
        loss = self.hparams.retain_alpha * retain_loss + self.hparams.forget_alpha * forget_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}
