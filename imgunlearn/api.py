"""The Python API in a few calls: pretrain an original, unlearn with a method, save and load with the task.

    data = ForgetRetainDataModule(source="synthetic", task="restore")
    original = pretrain("unet_small", data, max_steps=600)
    unlearned = unlearn(original, data, method="noisy_label", max_steps=250, region="box")
    save(unlearned, "runs/mine/unlearned", data.task)
    model, task = load_model("runs/mine/unlearned"), load_task("runs/mine/unlearned")
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import lightning as L

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods import METHODS
from imgunlearn.models.base import ImageToImageModel
from imgunlearn.optim import check_strategy
from imgunlearn.pipeline import load_task, save  # noqa: F401  (re-exported; saving lives in imgunlearn.pipeline)
from imgunlearn.training import Pretrainer, StepProgressBar

TRAINER_ARGS = frozenset(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
"""Keyword arguments `pretrain` and `unlearn` pass to `lightning.Trainer` (`devices`, `strategy`, `precision`, ...)."""


def _trainer(max_steps: int, accelerator: str, progress: bool, trainer_args: dict[str, Any]) -> L.Trainer:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a whole number >= 1, got {max_steps}")
    unknown = set(trainer_args) - TRAINER_ARGS
    if unknown:
        raise ValueError(f"unknown Trainer arguments: {', '.join(sorted(unknown))}")
    settings = {"max_epochs": -1, "devices": 1, "logger": False, "enable_checkpointing": False,
                "enable_model_summary": False, "use_distributed_sampler": False, "enable_progress_bar": progress,
                **trainer_args}
    if settings["enable_progress_bar"]:
        settings["callbacks"] = [*(settings.get("callbacks") or []), StepProgressBar()]
    trainer = L.Trainer(max_steps=max_steps, accelerator=accelerator, **settings)
    check_strategy(trainer)
    return trainer


def pretrain(model: ImageToImageModel | str, data: ForgetRetainDataModule, max_steps: int, lr: float = 2e-3,
             warmup_steps: int = 20, accelerator: str = "auto", progress: bool = True, seed: int = 0,
             **trainer_args: Any) -> ImageToImageModel:
    """Train an original model on the data's training set (forget ∪ retain); returns it in eval mode.

    Args:
        model: A model or the registry name of one (`"unet_small"`).
        data: The data; its training splits are the original's training set.
        max_steps: Optimiser steps.
        lr: Peak learning rate (warm-up, then cosine decay).
        warmup_steps: Warm-up steps.
        accelerator: Lightning accelerator; `"auto"` takes the best available (one device unless `devices` says).
        progress: Show one progress bar for the run.
        seed: Seed of the family's own random draws.
        **trainer_args: `lightning.Trainer` arguments: `devices`, `strategy` (e.g. `"ddp"`), `num_nodes`,
            `precision`, ... Under `strategy="ddp"` Lightning runs this script once per extra process; every
            process returns the same trained model.
    """
    module = Pretrainer(model, lr=lr, warmup_steps=warmup_steps, seed=seed)
    trainer = _trainer(max_steps, accelerator, progress, trainer_args)
    data.setup("fit")
    trainer.fit(module, train_dataloaders=data.pretrain_dataloader())
    return module.model.eval()


def unlearn(model: ImageToImageModel, data: ForgetRetainDataModule, method: str = "noisy_label", max_steps: int = 250,
            accelerator: str = "auto", progress: bool = True, **args: Any) -> ImageToImageModel:
    """Unlearn the data's forget set from a copy of `model` with a registered method.

    Args:
        model: The original model (left unchanged).
        data: Forget / retain data; its task makes the inputs of forget targets.
        method: A name from `imgunlearn.METHODS`.
        max_steps: Optimiser steps (paired forget + retain batches).
        accelerator: Lightning accelerator; `"auto"` takes the best available (one device unless `devices` says).
        progress: Show one progress bar for the run.
        **args: `lightning.Trainer` arguments (the names in `TRAINER_ARGS`: `devices`, `strategy`, `num_nodes`,
            `precision`, ...) and the method's settings (every other name: `lr`, `forget_target`, `region`,
            `forget_alpha`, ...).

    Returns:
        The unlearned copy, in eval mode.
    """
    trainer_args = {k: v for k, v in args.items() if k in TRAINER_ARGS}
    method_args = {k: v for k, v in args.items() if k not in TRAINER_ARGS}
    module = METHODS.get(method)(model=copy.deepcopy(model), task=data.task, **method_args)
    _trainer(max_steps, accelerator, progress, trainer_args).fit(module, datamodule=data)
    return module.model.eval()
