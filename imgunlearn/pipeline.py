"""A saved I2I model with its task, and the pipeline that restores new images in one call.

    imgunlearn.save(model, "runs/mine/unlearned", data.task)     # config.json, model.safetensors, task.json
    pipe = imgunlearn.load_pipeline("runs/mine/unlearned", device="cuda")
    restored = pipe(clean_images)                 # the task degrades them first (seeded), then the model restores
    restored = pipe(degraded, mask=mask)          # or give the model input and its hidden-pixel mask directly

Images are `[B, 3, H, W]` floats in [0, 1] (a single `[3, H, W]` image is accepted too); masks are
`[B, 1, H, W]`, 1 where pixels are hidden.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from imgunlearn.data.tasks import Task, task_from_file
from imgunlearn.io import write_json
from imgunlearn.models.base import ImageToImageModel, load_model
from imgunlearn.persistence import TASK_NAME


def save(model: ImageToImageModel, directory: str | Path, task: Task) -> Path:
    """Save `model` with the task it was trained for: `config.json`, `model.safetensors` and `task.json`.

    Args:
        model: The model.
        directory: Where to write (created if needed).
        task: The task that makes the model's inputs (e.g. `data.task`); required, so a saved model can
            always be used on new images.

    Returns:
        The directory.
    """
    if not isinstance(task, Task):
        raise ValueError(f"save needs the model's Task (e.g. data.task), got {type(task).__name__}")
    directory = model.save_pretrained(directory)
    write_json(directory / TASK_NAME, task.to_config())
    return directory


def load_task(directory: str | Path) -> Task:
    """The task saved beside a model by `save` (or by the CLI), validated like the `Task` constructor's arguments."""
    path = Path(directory) / TASK_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no task saved with the model: {path} is missing")
    return task_from_file(path)


class RestorationPipeline:
    """A model and its task: call it on a batch of clean images (degraded by the task) or of model inputs.

    Args:
        model: The I2I model (put in eval mode).
        task: The task the model was trained for.
        seed: Seeds the task's random degradation (noise, random boxes) of clean images, so a call is
            reproducible; None draws from torch's global RNG.
        batch_size: Images per forward pass (larger inputs are split).
    """

    def __init__(self, model: ImageToImageModel, task: Task, seed: int | None = 0, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.task = task
        self.seed = seed
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu", **kwargs) -> RestorationPipeline:
        """Load the model (on `device`) and the task saved in `directory` by `save`."""
        task = load_task(directory)
        return cls(load_model(directory, map_location=device), task, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> RestorationPipeline:
        self.model.to(device)
        return self

    def degrade(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """`(model_input, mask)` of clean images under the task, seeded with `seed`."""
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        return self.task(images, generator)

    @torch.no_grad()
    def __call__(self, images: Tensor, mask: Tensor | None = None) -> Tensor:
        """Restored images `[B, 3, H, W]` in [0, 1] on the images' device.

        Args:
            images: Clean images (without `mask`: the task degrades them first) or model inputs (with `mask`),
                `[B, 3, H, W]` or `[3, H, W]` in [0, 1].
            mask: Hidden pixels of the model inputs, `[B, 1, H, W]` (1 = hidden); use zeros for a task that
                hides nothing (`restore` without holes).
        """
        single = images.ndim == 3
        images = images[None] if single else images
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W] (or [3, H, W]), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floats in [0, 1], got dtype {images.dtype}")
        if mask is None:
            model_input, mask = self.degrade(images.float().cpu())
        else:
            mask = mask[None] if single and mask.ndim == 3 else mask
            if mask.shape != (images.shape[0], 1, *images.shape[2:]):
                raise ValueError(f"mask must be [B, 1, H, W] = {[images.shape[0], 1, *images.shape[2:]]}, "
                                 f"got {list(mask.shape)}")
            model_input = images
        device = self.device
        outputs = []
        for start in range(0, images.shape[0], self.batch_size):
            chunk = slice(start, start + self.batch_size)
            outputs.append(self.model(model_input[chunk].float().to(device), mask[chunk].float().to(device)))
        restored = torch.cat(outputs).to(images.device)
        return restored[0] if single else restored

    def __repr__(self) -> str:
        return f"RestorationPipeline(model={self.model.config.get('name')!r}, task={self.task!r})"


def load_pipeline(directory: str | Path, device: str | torch.device = "cpu", **kwargs) -> RestorationPipeline:
    """`RestorationPipeline.from_pretrained(directory, device)`: a saved model and its task, ready to call."""
    return RestorationPipeline.from_pretrained(directory, device=device, **kwargs)
