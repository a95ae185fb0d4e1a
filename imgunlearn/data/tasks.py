"""Tasks: how a model input is made from a clean image.

A task draws a mask of hidden pixels (`[B, 1, H, W]`, 1 = hidden) and degrades the clean image
(`[B, 3, H, W]` in [0, 1]) into the model input. Hidden pixels are set to 0 in the input.

- `restore`: pixel noise plus down/up-sampling blur, optionally a few small square holes.
- `inpaint`: a centred box of side `ratio` of the image (the paper's protocol uses 1/4 and 1/2), or
  `random` boxes.
- `outpaint`: the borders hidden, each of width `ratio` of the side.
- `hybrid`: per image one of centred box, random box or borders (for training).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

TASK_NAMES = ("restore", "inpaint", "outpaint", "hybrid")


@dataclass(frozen=True)
class Task:
    """A degradation recipe; build one with `make_task` or directly.

    Args:
        name: One of `restore`, `inpaint`, `outpaint`, `hybrid`.
        noise_std: Gaussian pixel noise (restore).
        downsample: Down/up-sampling factor of the blur (restore; 1 = no blur).
        holes: Number of small square holes per image (restore).
        hole_ratio: Side of a restore hole as a share of the image side.
        ratio: Box side (inpaint) or border width (outpaint) as a share of the image side.
        box: `center` or `random` (inpaint).
    """

    name: str = "restore"
    noise_std: float = 0.1
    downsample: int = 2
    holes: int = 0
    hole_ratio: float = 0.125
    ratio: float = 0.5
    box: str = "center"

    def __post_init__(self) -> None:
        for key in ("name", "box"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"task setting {key}={getattr(self, key)!r} must be a string")
        for key, lowest in (("downsample", 1), ("holes", 0)):
            value = getattr(self, key)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < lowest:
                raise ValueError(f"task setting {key}={value!r} must be an integer >= {lowest}")
        for key in ("noise_std", "hole_ratio", "ratio"):
            value = getattr(self, key)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"task setting {key}={value!r} must be a finite number")
        if self.name not in TASK_NAMES:
            raise ValueError(f"unknown task {self.name!r}; known: {', '.join(TASK_NAMES)}")
        if self.box not in ("center", "random"):
            raise ValueError(f"box must be 'center' or 'random', got {self.box!r}")
        if not 0.0 < self.ratio < 1.0 or (self.name == "outpaint" and self.ratio >= 0.5):
            raise ValueError(f"ratio {self.ratio} out of range for task {self.name!r}")
        if self.noise_std < 0:
            raise ValueError(f"task setting noise_std={self.noise_std!r} must be >= 0")
        if not 0.0 < self.hole_ratio <= 1.0:
            raise ValueError(f"task setting hole_ratio={self.hole_ratio!r} must be in (0, 1]")

    # ---- masks -------------------------------------------------------------------------------------

    def sample_mask(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Hidden pixels for a batch `image` `[B, C, H, W]` -> `[B, 1, H, W]` float (1 = hidden)."""
        b, _, h, w = image.shape
        mask = torch.zeros(b, 1, h, w, device=image.device)
        if self.name == "restore":
            side = max(1, round(self.hole_ratio * min(h, w)))
            for i in range(b):
                for _ in range(self.holes):
                    self._box(mask[i], side, side, generator, random=True)
            return mask
        if self.name == "inpaint":
            side_h, side_w = self._side(h), self._side(w)
            for i in range(b):
                self._box(mask[i], side_h, side_w, generator, random=self.box == "random")
            return mask
        if self.name == "outpaint":
            return self._borders(mask)
        # hybrid: per image one of centred box, random box, borders
        choice = torch.randint(0, 3, (b,), generator=generator).tolist()
        side_h, side_w = self._side(h), self._side(w)
        for i, c in enumerate(choice):
            if c == 2:
                self._borders(mask[i : i + 1])
            else:
                self._box(mask[i], side_h, side_w, generator, random=c == 1)
        return mask

    def _side(self, n: int) -> int:
        side = round(self.ratio * n)
        if side < 1 or side >= n:
            raise ValueError(f"image side {n} is too small for a {self.name} box of ratio {self.ratio}")
        return side

    @staticmethod
    def _box(mask: Tensor, bh: int, bw: int, generator: torch.Generator | None, random: bool) -> None:
        _, h, w = mask.shape
        if bh > h or bw > w:
            raise ValueError(f"image {h}x{w} is smaller than the mask box {bh}x{bw}")
        if random:
            top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
        else:
            top, left = (h - bh) // 2, (w - bw) // 2
        mask[:, top : top + bh, left : left + bw] = 1.0

    def _borders(self, mask: Tensor) -> Tensor:
        h, w = mask.shape[-2:]
        bh, bw = max(1, round(self.ratio * h)), max(1, round(self.ratio * w))
        if 2 * bh >= h or 2 * bw >= w:
            raise ValueError(f"image {h}x{w} is too small for outpaint borders of ratio {self.ratio}")
        mask[..., :bh, :] = 1.0
        mask[..., -bh:, :] = 1.0
        mask[..., :, :bw] = 1.0
        mask[..., :, -bw:] = 1.0
        return mask

    # ---- degradation -------------------------------------------------------------------------------

    def degrade(self, image: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The model input for `image` `[B, 3, H, W]` under `mask` `[B, 1, H, W]`."""
        if image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} differ in size")
        x = image
        if self.name == "restore":
            if self.downsample > 1:
                h, w = x.shape[-2:]
                x = F.avg_pool2d(x, self.downsample, ceil_mode=True)
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            if self.noise_std > 0:
                noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
                x = (x + self.noise_std * noise).clamp(0.0, 1.0)
        return x * (1.0 - mask)

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """`(model_input, mask)` for a clean batch `image`."""
        mask = self.sample_mask(image, generator)
        return self.degrade(image, mask, generator), mask

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


def make_task(name: str = "restore", **kwargs: Any) -> Task:
    """Build a task by name with optional settings (see `Task`)."""
    return Task(name=name, **kwargs)


def task_from_config(config: dict[str, Any], source: str | Path | None = None) -> Task:
    """Inverse of `Task.to_config`, with the constructor's checks; unknown keys are an error.

    Args:
        config: Task settings by name.
        source: The file the settings were read from (e.g. a `task.json`), named in errors.
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(config, dict):
        raise ValueError(f"{where}task settings must be a mapping of names to values, got {type(config).__name__}")
    known = set(Task.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"{where}unknown task settings {sorted(unknown)}; known: {sorted(known)}")
    try:
        return Task(**config)
    except ValueError as e:
        raise ValueError(f"{where}{e}") from None


def task_from_file(path: str | Path) -> Task:
    """The task saved in a JSON file (`task.json`), checked like the constructor's arguments; errors name the
    file and the value (JSON's `NaN` / `Infinity` are refused)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON task file: {e}") from None
    return task_from_config(config, source=path)
