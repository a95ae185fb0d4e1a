"""The embedded synthetic aerial survey: procedural tiles, some showing a real face.

Forget tiles carry one face crop from scikit-image's bundled LFW subset (see `faces.py`) with its box;
retain tiles carry none. Held-out forget tiles use faces disjoint from the training faces. Everything is
deterministic from the seed, and each split has its own random stream, so changing one split's count
leaves the other splits' tiles unchanged.

`SurveyData.save` writes the tiles as PNG folders plus a CSV in the user-data format (`user_data.py`), so a
saved survey is also a worked example of how to hand your own data to imgunlearn.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgunlearn.data.faces import paste_faces, split_face_ids
from imgunlearn.data.ground import render_ground
from imgunlearn.data.splits import SPLIT_TO_CSV, SPLITS, ImageSet, format_box
from imgunlearn.data.user_data import read_csv
from imgunlearn.io import atomic_write_bytes, atomic_write_text

CSV_NAME = "splits.csv"


@dataclass
class SurveyData:
    """The four splits of a survey (`forget_train`, `retain_train`, `forget_holdout`, `retain_holdout`).

    Each split is an in-memory `ImageSet`: `.images` uint8 `[N, 3, H, W]`, `.boxes` `[N, 4]` face boxes
    `(top, left, height, width)` (rows of -1 on retain tiles) and `.ids` the face entry of each forget tile
    (-1 on retain tiles).
    """

    splits: dict[str, ImageSet]

    def __getitem__(self, name: str) -> ImageSet:
        return self.splits[name]

    @property
    def forget_train(self) -> ImageSet:
        return self.splits["forget_train"]

    @property
    def retain_train(self) -> ImageSet:
        return self.splits["retain_train"]

    @property
    def forget_holdout(self) -> ImageSet:
        return self.splits["forget_holdout"]

    @property
    def retain_holdout(self) -> ImageSet:
        return self.splits["retain_holdout"]

    def save(self, directory: str | Path) -> Path:
        """Write `directory/<split>/<n>.png` per tile and `directory/splits.csv` listing them.

        The CSV (`path,split,box,person_id`) is written last, so a directory with a CSV is complete.
        """
        directory = Path(directory)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "split", "box", "person_id"])
        for name in SPLITS:
            images, folder = self.splits[name], SPLIT_TO_CSV[name]
            (directory / folder).mkdir(parents=True, exist_ok=True)
            for i in range(len(images)):
                relative = f"{folder}/{i:05d}.png"
                tile = Image.fromarray(images.image(i).transpose(1, 2, 0))
                atomic_write_bytes(directory / relative, lambda f, tile=tile: tile.save(f, format="PNG"))
                person = int(images.ids[i])
                writer.writerow([relative, folder, format_box(images.boxes[i]), "" if person < 0 else person])
        atomic_write_text(directory / CSV_NAME, buffer.getvalue())
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SurveyData:
        """Read a survey written by `save` (or any CSV in the user-data format named `splits.csv`)."""
        path = Path(directory) / CSV_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no saved survey in {directory}: {path} is missing")
        return cls({name: images.materialize() for name, images in read_csv(path).items()})


def generate_survey(
    num_forget: int = 200,
    num_retain: int = 800,
    num_holdout_forget: int = 100,
    num_holdout_retain: int = 100,
    size: int = 64,
    seed: int = 0,
    num_holdout_faces: int = 20,
) -> SurveyData:
    """Generate a synthetic aerial survey.

    Args:
        num_forget: Forget tiles the original model trains on (each shows a training face).
        num_retain: Retain tiles the original model trains on (no face).
        num_holdout_forget: Held-out tiles showing a held-out face.
        num_holdout_retain: Held-out tiles without a face.
        size: Tile side in pixels (>= 16).
        seed: Seed of every random draw.
        num_holdout_faces: How many of the 100 face entries are kept for held-out tiles; the others appear
            in training tiles (each face as evenly as the counts allow).

    Returns:
        The four splits as a `SurveyData`.
    """
    counts = {"forget_train": num_forget, "retain_train": num_retain,
              "forget_holdout": num_holdout_forget, "retain_holdout": num_holdout_retain}
    for name, count in counts.items():
        if count < 0:
            raise ValueError(f"number of {name} tiles must be >= 0, got {count}")
    if size < 16:
        raise ValueError(f"tile size must be >= 16, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    train_faces, holdout_faces = split_face_ids(num_holdout_faces, seed)
    pools = {"forget_train": train_faces, "forget_holdout": holdout_faces}
    splits = {}
    for stream, name in enumerate(SPLITS):
        rng = np.random.default_rng([seed, stream])
        tiles = render_ground(rng, counts[name], size)
        boxes = np.full((counts[name], 4), -1, dtype=np.int64)
        ids = np.full(counts[name], -1, dtype=np.int64)
        if name in pools:
            ids = _spread(pools[name], counts[name], rng)
            boxes = paste_faces(tiles, ids, rng)
        names = [f"{name}/{i:05d}" for i in range(counts[name])]
        splits[name] = ImageSet.from_arrays(names, tiles, boxes, ids)
    return SurveyData(splits)


def _spread(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` entries of `pool`, each used as evenly as possible, in random order."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    repeats = -(-count // len(pool))
    ids = np.concatenate([rng.permutation(pool) for _ in range(repeats)])[:count]
    return rng.permutation(ids)
