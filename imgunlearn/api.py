"""The Python API in a few calls: pretrain an original, unlearn with a method, save and load with the task.

    data = ForgetRetainDataModule(source="synthetic", task="restore")
    original = pretrain("unet_small", data, max_steps=600)
    unlearned = unlearn(original, data, method="noisy_label", max_steps=250, region="box")
    save(unlearned, "runs/mine/unlearned", data.task)
    model, task = load_model("runs/mine/unlearned"), load_task("runs/mine/unlearned")
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods import METHODS
from imgunlearn.models.base import ImageToImageModel
from imgunlearn.pipeline import load_task, save  # noqa: F401  (re-exported; saving lives in imgunlearn.pipeline)
from imgunlearn.training import Pretrainer


def _trainer(max_steps: int, accelerator: str, progress: bool) -> L.Trainer:
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    return L.Trainer(max_steps=max_steps, max_epochs=-1, accelerator=accelerator, devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False)


def pretrain(model: ImageToImageModel | str, data: ForgetRetainDataModule, max_steps: int, lr: float = 2e-3,
             warmup_steps: int = 20, accelerator: str = "cpu", progress: bool = True) -> ImageToImageModel:
    """Train an original model on the data's training set (forget ∪ retain); returns it in eval mode."""
    module = Pretrainer(model, lr=lr, warmup_steps=warmup_steps)
    data.setup("fit")
    _trainer(max_steps, accelerator, progress).fit(module, train_dataloaders=data.pretrain_dataloader())
    return module.model.eval()


def unlearn(model: ImageToImageModel, data: ForgetRetainDataModule, method: str = "noisy_label", max_steps: int = 250,
            accelerator: str = "cpu", progress: bool = True, **method_args: Any) -> ImageToImageModel:
    """Unlearn the data's forget set from a copy of `model` with a registered method.

    Args:
        model: The original model (left unchanged).
        data: Forget / retain data; its task makes the inputs of forget targets.
        method: A name from `imgunlearn.METHODS`.
        max_steps: Optimiser steps (paired forget + retain batches).
        accelerator: Lightning accelerator ("cpu", "gpu", "auto").
        progress: Show Lightning's progress bar.
        **method_args: The method's settings (`lr`, `forget_target`, `region`, `forget_alpha`, ...).

    Returns:
        The unlearned copy, in eval mode.
    """
    module = METHODS.get(method)(model=copy.deepcopy(model), task=data.task, **method_args)
    data.setup("fit")
    _trainer(max_steps, accelerator, progress).fit(module, train_dataloaders=data.train_dataloader())
    return module.model.eval()
