"""`Pretrainer`: trains an original I2I model from scratch with its family's own objective; `StepProgressBar`.

Unlearning starts from an original model; the embedded demo has no pretrained weights to start from, so it
trains one first on the whole training set (forget ∪ retain), as the model owner once did.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import Tensor

from imgunlearn.models.base import ImageToImageModel, create_model
from imgunlearn.optim import (
    check_count,
    check_finite_loss,
    check_finite_weights,
    check_non_negative,
    check_positive,
    check_strategy,
    step_rng,
    step_seed,
    warmup_cosine,
)


class Pretrainer(L.LightningModule):
    """Fits `model` to complete images: minimises `model.reconstruction_loss(input, mask, image)`.

    Args:
        model: A model, or the registry name of one to create (e.g. `"unet_small"`).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up before a cosine decay to zero over the run.
        seed: Seeds the family's own random draws (noise levels, masks) step by step and process by process.
    """

    def __init__(self, model: ImageToImageModel | str, lr: float = 2e-3, weight_decay: float = 0.0,
                 warmup_steps: int = 20, seed: int = 0) -> None:
        super().__init__()
        check_positive("lr", lr)
        check_non_negative("weight_decay", weight_decay)
        check_count("warmup_steps", warmup_steps)
        self.save_hyperparameters(ignore=["model"])
        self.model = create_model(model) if isinstance(model, str) else model

    def setup(self, stage: str) -> None:
        check_strategy(self.trainer)

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.model(model_input, mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        with step_rng(step_seed(self.hparams.seed, self.global_step, self.global_rank), self.device):
            loss = self.model.reconstruction_loss(batch["input"], batch["mask"], batch["image"])
        check_finite_loss(self, loss)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        check_finite_weights(self.model, self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["model_training_state"] = self.model.training_state()  # e.g. the VQ-GAN's code usage counts

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_training_state(checkpoint.get("model_training_state", {}))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class StepProgressBar(TQDMProgressBar):
    """One bar per run for step-limited training (`max_steps`), counting optimiser steps; Lightning's per-epoch
    bars otherwise."""

    def _by_step(self, trainer: L.Trainer) -> bool:
        return trainer.max_steps > 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self._by_step(trainer):
            self.train_progress_bar.reset(trainer.max_steps)
            self.train_progress_bar.n = trainer.global_step  # a resumed run continues where it stopped
            self.train_progress_bar.set_description("steps")

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not self._by_step(trainer):
            super().on_train_epoch_start(trainer, *args)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._by_step(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if not bar.disable and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()
        return None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._by_step(trainer):
            super().on_train_epoch_end(trainer, pl_module)
        elif not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
