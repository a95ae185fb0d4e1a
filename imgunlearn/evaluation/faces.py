"""Face detection with OpenCV's Haar frontal-face cascade (shipped with opencv-python-headless).

Settings found usable on 64×64 survey tiles: the tile is upscaled 2× (bicubic) before detection,
`scaleFactor=1.1`, `minNeighbors=5`, `minSize=28` px (in the upscaled image). Boxes are returned in the
coordinates of the original image.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

CASCADE_NAME = "haarcascade_frontalface_default.xml"


def to_gray_uint8(image: Tensor | np.ndarray) -> np.ndarray:
    """An RGB image `[3, H, W]` float in [0, 1] (tensor or array) or `[H, W, 3]` uint8 array as `[H, W]` uint8."""
    if isinstance(image, Tensor):
        image = image.detach().cpu()
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an RGB image [3, H, W], got {tuple(image.shape)}")
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # [H, W, 3]
    elif image.dtype != np.uint8:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a float RGB array [3, H, W], got {image.shape}")
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got shape {image.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


@dataclass
class FaceDetector:
    """Haar-cascade frontal-face detector.

    Args:
        upscale: Images are resized by this factor (bicubic) before detection.
        scale_factor: Cascade image-pyramid step.
        min_neighbors: Overlapping raw detections needed to keep a face.
        min_size: Smallest face side in pixels of the upscaled image.
        cascade_path: A cascade XML file; default OpenCV's bundled frontal-face cascade.
        memo_size: Detections of this many recent distinct images are remembered (keyed by a hash of their
            pixels), so an image scored by several metrics is searched once.
    """

    upscale: float = 2.0
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 28
    cascade_path: str | None = None
    memo_size: int = 20_000
    _cascade: cv2.CascadeClassifier = field(init=False, repr=False)
    _memo: OrderedDict = field(init=False, repr=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.upscale <= 0 or self.scale_factor <= 1.0 or self.min_neighbors < 0 or self.min_size < 1:
            raise ValueError(f"invalid detector settings: upscale={self.upscale}, scale_factor={self.scale_factor}, "
                             f"min_neighbors={self.min_neighbors}, min_size={self.min_size}")
        path = Path(self.cascade_path or Path(cv2.data.haarcascades) / CASCADE_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"face cascade not found: {path}")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ValueError(f"could not load the face cascade {path}")

    def detect(self, image: Tensor | np.ndarray) -> np.ndarray:
        """Faces in one RGB image (see `to_gray_uint8`) as `[N, 4]` int boxes `(x, y, w, h)` in its pixels."""
        gray = to_gray_uint8(image)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr(gray.shape).encode())
        digest.update(gray.tobytes())
        key = digest.digest()
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key].copy()
        boxes = self._detect(gray)
        self._memo[key] = boxes
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return boxes.copy()

    def _detect(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        if self.upscale != 1.0:
            size = (max(1, round(w * self.upscale)), max(1, round(h * self.upscale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC)
        found = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        if len(found) == 0:
            return np.zeros((0, 4), dtype=np.int64)
        boxes = np.asarray(found, dtype=np.float64) / self.upscale
        return np.round(boxes).astype(np.int64)


@lru_cache(maxsize=1)
def default_detector() -> FaceDetector:
    """One shared detector with the default settings (loading a cascade takes a moment)."""
    return FaceDetector()


def box_overlap(box: np.ndarray, region: np.ndarray) -> float:
    """Share of a detection box `(x, y, w, h)` covered by a `[H, W]` region map (1 = forget content)."""
    x, y, w, h = (int(v) for v in box)
    patch = region[max(y, 0) : y + h, max(x, 0) : x + w]
    return float((patch > 0.5).sum()) / max(w * h, 1)
