"""`Pretrainer`: trains an original I2I model from scratch with its family's own objective.

Unlearning starts from an original model; the embedded demo has no pretrained weights to start from, so it
trains one first on the whole training set (forget ∪ retain), as the model owner once did.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from imgunlearn.models.base import ImageToImageModel, create_model
from imgunlearn.optim import warmup_cosine


class Pretrainer(L.LightningModule):
    """Fits `model` to complete images: minimises `model.reconstruction_loss(input, mask, image)`.

    Args:
        model: A model, or the registry name of one to create (e.g. `"unet_small"`).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up before a cosine decay to zero over the run.
    """

    def __init__(
        self, model: ImageToImageModel | str, lr: float = 2e-3, weight_decay: float = 0.0, warmup_steps: int = 20
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.save_hyperparameters(ignore=["model"])
        self.model = create_model(model) if isinstance(model, str) else model

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.model(model_input, mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.model.reconstruction_loss(batch["input"], batch["mask"], batch["image"])
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
