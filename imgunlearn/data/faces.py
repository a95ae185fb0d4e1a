"""Real face crops for the synthetic survey, and a face detector to check they stay recognisable.

The faces are the first 100 entries of scikit-image's bundled `lfw_subset` (25×25 grey crops from Labeled
Faces in the Wild; no download). A face is mirrored at random, resized (bicubic) to a third to a half of the
tile side, brought to a common contrast, tinted to a skin tone and pasted at a random place; its box
`(top, left, height, width)` is recorded.

`detect_faces` runs OpenCV's Haar frontal-face cascade after a 2× cubic upscaling; it is the yardstick the
survey is tuned against and a cheap proxy for "does this output still show a face". On the default 64×64
survey (seeds 0-2) it finds a face on 94% of clean forget tiles (a few LFW crops are tilted or low in
contrast and are rarely found) and on 0.1% of retain tiles.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

NUM_FACES = 100
"""Entries of `lfw_subset` that are faces (the other 100 are not)."""

SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.56], [0.80, 0.60, 0.45], [0.65, 0.46, 0.32],
                       [0.50, 0.34, 0.23]], dtype=np.float32)
"""RGB skin tones, light to dark; a tinted face keeps the grey crop's shading."""



@lru_cache(maxsize=1)
def lfw_faces() -> np.ndarray:
    """The face crops of `skimage.data.lfw_subset()`: float32 `[100, 25, 25]` in [0, 1] (read-only)."""
    from skimage.data import lfw_subset

    faces = np.ascontiguousarray(lfw_subset()[:NUM_FACES], dtype=np.float32)
    faces.setflags(write=False)
    return faces


def split_face_ids(num_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the 100 face entries into disjoint training and held-out ids, by seed.

    Args:
        num_holdout: Faces kept for the held-out forget tiles (1..99).
        seed: Seed of the permutation.

    Returns:
        `(train_ids, holdout_ids)`, sorted int64 arrays.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0 < num_holdout < NUM_FACES:
        raise ValueError(f"num_holdout_faces must be in 1..{NUM_FACES - 1}, got {num_holdout}")
    order = np.random.default_rng([seed, 0xFACE]).permutation(NUM_FACES)
    return np.sort(order[num_holdout:]), np.sort(order[:num_holdout])


def paste_faces(tiles: np.ndarray, face_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paste face `face_ids[i]` into `tiles[i]` in place.

    Args:
        tiles: uint8 `[N, 3, H, W]`, changed in place.
        face_ids: `[N]` entries of `lfw_faces()`.
        rng: Draws each face's tone, size, flip and place.

    Returns:
        int64 boxes `[N, 4]` as `(top, left, height, width)`.
    """
    n, _, h, w = tiles.shape
    faces = lfw_faces()
    boxes = np.empty((n, 4), dtype=np.int64)
    low, high = max(4, round(min(h, w) / 3)), max(4, round(min(h, w) / 2))
    sides = rng.integers(low, high + 1, n)
    tones = SKIN_TONES[rng.integers(0, len(SKIN_TONES), n)] * rng.uniform(0.92, 1.08, (n, 1)).astype(np.float32)
    flips = rng.random(n) < 0.5
    tops = rng.integers(0, h - sides + 1)
    lefts = rng.integers(0, w - sides + 1)
    for i in range(n):
        side, top, left = int(sides[i]), int(tops[i]), int(lefts[i])
        face = faces[face_ids[i], :, ::-1] if flips[i] else faces[face_ids[i]]
        face = cv2.resize(np.ascontiguousarray(face), (side, side), interpolation=cv2.INTER_CUBIC)
        face = (face - face.mean()) / (face.std() + 1e-6) * 0.22 + 0.55  # a common contrast for every face
        rgb = np.clip(face[None] * tones[i, :, None, None] / 0.6, 0.0, 1.0)  # [3, side, side]
        tiles[i, :, top : top + side, left : left + side] = np.round(rgb * 255.0).astype(np.uint8)
        boxes[i] = (top, left, side, side)
    return boxes
