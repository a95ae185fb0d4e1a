"""Face-age data for the challenge track: the dataset, the person-disjoint splits and the loaders.

As in the NeurIPS 2023 Machine Unlearning Challenge: images are `[3, 32, 32]` float32 holding the uint8 pixel
values (no normalisation); ages fall into equal-width groups (`np.linspace(min_age, max_age + 1, 11)`,
`np.digitize(age, bins) - 1`); the data is split 80/10/10 into train / val / test, and the forget set is all
training images of some people, so that it shares no person with the retain, val or test sets.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from imgunlearn.challenge.face_checks import check_ages, check_listed_once, check_one_person_per_image, whole_groups
from imgunlearn.challenge.synthetic_faces import SyntheticFaces
from imgunlearn.io import atomic_write_text, write_json
from imgunlearn.reading import open_rgb, read_text

SPLIT_NAMES = ("retain", "forget", "val", "test")
IMAGE_SUFFIXES = ("", ".png", ".jpg", ".jpeg")
AGE_RANGE = (0.0, 120.0)


def age_bins(ages: np.ndarray, num_groups: int = 10) -> np.ndarray:
    """Edges of `num_groups` equal-width age groups covering `ages`: `linspace(min, max + 1, num_groups + 1)`."""
    ages = np.asarray(ages, dtype=np.float64)
    if ages.size == 0:
        raise ValueError("cannot make age groups from an empty set of ages")
    return np.linspace(ages.min(), ages.max() + 1, num_groups + 1)


def age_groups(ages: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """The age group of every age, `np.digitize(age, bins) - 1`, as int64."""
    return (np.digitize(np.asarray(ages, dtype=np.float64), bins) - 1).astype(np.int64)


class FaceAgeDataset(Dataset):
    """Face images with age groups and person ids, held in memory.

    Items are dicts: `"image"` (float32 `[3, H, W]`, uint8 values, not normalised), `"age_group"` (int64),
    `"age"` (float32) and `"person_id"` (int64 when the ids are integers, else a string).

    Args:
        images: `[N, 3, H, W]` or `[N, H, W, 3]` uint8 pixels.
        ages: `[N]` ages.
        person_ids: `[N]` person ids, or None when unknown (no person-disjoint forget split is then possible).
        age_group: `[N]` precomputed groups; by default computed from `bins`.
        bins: Group edges; default `age_bins(ages, num_groups)`.
        num_groups: Number of age groups when `bins` is not given.
        image_ids: `[N]` names of the images (default: their index).
        age_range: The plausible ages `(lowest, highest)`; an age outside (or not finite) is refused, so that
            one typo cannot stretch the equal-width groups over an empty range.
        check_images: Hash the pixels to refuse one image under two people (off for subsets of a checked set).

    Refused: ages outside `age_range`, age groups that are not whole numbers in `0..num_groups - 1`, and the
    same image (identical pixels) under two people, which would put it on both sides of a forget split.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        ages: Sequence[float] | np.ndarray,
        person_ids: Sequence[Any] | np.ndarray | None = None,
        age_group: Sequence[int] | np.ndarray | None = None,
        bins: np.ndarray | None = None,
        num_groups: int = 10,
        image_ids: Sequence[str] | None = None,
        age_range: tuple[float, float] = AGE_RANGE,
        check_images: bool = True,
    ) -> None:
        images = torch.as_tensor(np.asarray(images))
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, 3, H, W] or [N, H, W, 3], got {images.dtype} {list(images.shape)}")
        if images.shape[1] != 3 and images.shape[3] == 3:
            images = images.permute(0, 3, 1, 2)  # [N, H, W, 3] -> [N, 3, H, W]
        self.images = images.contiguous()
        n = len(self.images)
        self.image_ids = [str(i) for i in range(n)] if image_ids is None else [str(i) for i in image_ids]
        self.ages = np.asarray(ages, dtype=np.float64)
        self.person_ids = None if person_ids is None else np.asarray(person_ids)
        for name, value in (("ages", self.ages), ("age_group", age_group), ("person_ids", self.person_ids),
                            ("image_ids", self.image_ids)):
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")
        check_ages(self.ages, self.image_ids, age_range)
        self.age_range = (float(age_range[0]), float(age_range[1]))
        self.bins = age_bins(self.ages, num_groups) if bins is None else np.asarray(bins, dtype=np.float64)
        self.age_group = age_groups(self.ages, self.bins) if age_group is None else \
            whole_groups(age_group, self.image_ids)
        self.num_groups = len(self.bins) - 1
        bad = (self.age_group < 0) | (self.age_group >= self.num_groups)
        if bad.any():
            raise ValueError(f"age group {self.age_group[bad][0]} of image {self.image_ids[int(np.argmax(bad))]!r} "
                             f"is outside 0..{self.num_groups - 1}")
        self._int_ids = self.person_ids is not None and np.issubdtype(self.person_ids.dtype, np.integer)
        if self.person_ids is not None and check_images:
            check_one_person_per_image(self.images, self.person_ids, self.image_ids)

    @classmethod
    def from_faces(cls, faces: SyntheticFaces, num_groups: int = 10) -> FaceAgeDataset:
        """Wrap generated synthetic faces."""
        return cls(faces.images, faces.ages, faces.person_ids, num_groups=num_groups)

    @classmethod
    def from_csv(cls, csv_path: str | Path, root: str | Path | None = None, image_size: int = 32,
                 num_groups: int = 10, age_range: tuple[float, float] = AGE_RANGE) -> FaceAgeDataset:
        """Read a CSV with an `image_id` or `path` column, `age`, and optional `age_group` and `person_id`.

        `path` is relative to `root` (default: the CSV's folder) unless absolute; `image_id` names a file in
        `root`, with or without a `.png` / `.jpg` suffix. Images are read as RGB (high bit depths scaled, see
        `imgunlearn.reading`) and resized to `image_size` when their size differs. The CSV is UTF-8 (a
        byte-order mark is fine) or UTF-16 with a byte-order mark. One file listed twice, ages outside
        `age_range` and age groups that are not whole numbers are refused (see the class).
        """
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"face CSV not found: {csv_path}")
        text = read_text(csv_path)
        try:
            frame = pd.read_csv(io.StringIO(text), dtype={"image_id": str, "path": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ValueError(f"{csv_path}: not a readable CSV: {error}") from None
        root = csv_path.parent if root is None else Path(root)
        key = "path" if "path" in frame.columns else "image_id" if "image_id" in frame.columns else None
        if key is None:
            raise ValueError(f"{csv_path} needs an 'image_id' or 'path' column; it has {list(frame.columns)}")
        if "age" not in frame.columns:
            raise ValueError(f"{csv_path} needs an 'age' column; it has {list(frame.columns)}")
        if len(frame) == 0:
            raise ValueError(f"{csv_path} lists no images")
        for column in (key, "age", "age_group", "person_id"):
            if column in frame.columns and frame[column].isna().any():
                row = int(np.argmax(frame[column].isna().to_numpy()))
                raise ValueError(f"{csv_path}: empty {column!r} in row {row + 2}")
        numbers = {}
        for column in ("age", "age_group"):
            if column in frame.columns:
                values = pd.to_numeric(frame[column], errors="coerce")
                if values.isna().any():
                    row = int(np.argmax(values.isna().to_numpy()))
                    raise ValueError(f"{csv_path}: {column} {frame[column].iloc[row]!r} in row {row + 2} is not a "
                                     f"number")
                numbers[column] = values.to_numpy(np.float64)
        image_ids = frame[key].astype(str).tolist()
        try:
            check_ages(numbers["age"], image_ids, age_range)
            if "age_group" in numbers:
                whole_groups(numbers["age_group"], image_ids)
        except ValueError as error:
            raise ValueError(f"{csv_path}: {error}") from None
        paths = [_image_path(root, str(name)) for name in frame[key]]
        check_listed_once(paths, frame["person_id"].tolist() if "person_id" in frame.columns else None, csv_path)
        images = np.stack([_read_image(path, image_size) for path in paths])
        persons = frame["person_id"].to_numpy() if "person_id" in frame.columns else None
        try:
            return cls(images, numbers["age"], persons, age_group=numbers.get("age_group"), num_groups=num_groups,
                       image_ids=image_ids, age_range=age_range)
        except ValueError as error:
            raise ValueError(f"{csv_path}: {error}") from None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {
            "image": self.images[index].float(),
            "age_group": torch.tensor(self.age_group[index], dtype=torch.int64),
            "age": torch.tensor(self.ages[index], dtype=torch.float32),
        }
        if self.person_ids is not None:
            pid = self.person_ids[index]
            item["person_id"] = torch.tensor(int(pid), dtype=torch.int64) if self._int_ids else str(pid)
        return item

    def subset(self, indices: Sequence[int] | np.ndarray) -> FaceAgeDataset:
        """The images at `indices`, with the same age bins."""
        idx = np.asarray(indices, dtype=np.int64)
        return FaceAgeDataset(self.images[torch.from_numpy(idx)], self.ages[idx],
                              None if self.person_ids is None else self.person_ids[idx],
                              age_group=self.age_group[idx], bins=self.bins,
                              image_ids=[self.image_ids[i] for i in idx], age_range=self.age_range,
                              check_images=False)

    def fingerprint(self) -> str:
        """A short hash of the labels, person ids and image ids (to check that splits match this dataset)."""
        h = hashlib.sha256()
        h.update(self.age_group.tobytes())
        h.update("\0".join(self.image_ids).encode())
        if self.person_ids is not None:
            h.update("\0".join(map(str, self.person_ids)).encode())
        return h.hexdigest()[:16]


def _image_path(root: Path, name: str) -> Path:
    base = Path(name) if Path(name).is_absolute() else root / name
    path = next((base.with_name(base.name + s) for s in IMAGE_SUFFIXES if base.with_name(base.name + s).is_file()),
                None)
    if path is None:
        raise FileNotFoundError(f"image {name!r} not found under {root}")
    return path


def _read_image(path: Path, size: int) -> np.ndarray:
    """uint8 `[size, size, 3]`; errors name the file."""
    image = open_rgb(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


@dataclass
class FaceSplits:
    """Index sets of one dataset: `train` (= retain + forget), `retain`, `forget`, `val` and `test`.

    Attributes:
        dataset: The full dataset the indices refer to.
        indices: Split name -> sorted int64 indices.
        forget_people: The person ids whose training images form the forget set.
        seed: The seed the split was drawn with.
    """

    dataset: FaceAgeDataset
    indices: dict[str, np.ndarray]
    forget_people: list[Any] = field(default_factory=list)
    seed: int = 0

    def subset(self, name: str) -> FaceAgeDataset:
        if name not in self.indices:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(self.indices)}")
        return self.dataset.subset(self.indices[name])

    def write_splits(self, directory: str | Path) -> None:
        """Write `splits.json` (indices, forget people, bins, seed, dataset fingerprint) and `splits.csv`
        (one row per image: image_id, person_id, age, age_group, split) into `directory`, atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ds = self.dataset
        record = {
            "seed": self.seed, "fingerprint": ds.fingerprint(), "num_images": len(ds), "bins": ds.bins.tolist(),
            "forget_people": [_plain(p) for p in self.forget_people],
            "indices": {k: v.tolist() for k, v in self.indices.items()},
        }
        write_json(directory / "splits.json", record, indent=1)
        split_of = np.full(len(ds), "", dtype=object)
        for name in SPLIT_NAMES:
            split_of[self.indices[name]] = name
        frame = pd.DataFrame({"image_id": ds.image_ids, "age": ds.ages, "age_group": ds.age_group,
                              "split": split_of})
        if ds.person_ids is not None:
            frame.insert(1, "person_id", ds.person_ids)
        atomic_write_text(directory / "splits.csv", frame.to_csv(index=False))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def split_faces(
    dataset: FaceAgeDataset,
    forget_people: int | Sequence[Any] = 15,
    seed: int = 0,
    val_share: float = 0.1,
    test_share: float = 0.1,
) -> FaceSplits:
    """Split 80/10/10 with a person-disjoint forget set; the same seed gives the same split.

    The forget people are drawn first (or given); all their images form the forget set (they are training
    images). The other images are shuffled into val (`val_share` of all images), test (`test_share`) and retain
    (the rest), so retain + forget is the training set.

    Args:
        dataset: Needs person ids.
        forget_people: How many people to forget (drawn at random), or their ids.
        seed: Seeds the draws.
        val_share: Share of all images in the validation set.
        test_share: Share of all images in the test set.
    """
    if dataset.person_ids is None:
        raise ValueError("a person-disjoint forget split needs person ids; the dataset has no 'person_id' column")
    if val_share < 0 or test_share < 0 or val_share + test_share >= 1:
        raise ValueError(f"val_share {val_share} and test_share {test_share} must be >= 0 and sum to less than 1")
    rng = np.random.default_rng(seed)
    people = np.unique(dataset.person_ids)
    if isinstance(forget_people, (int, np.integer)):
        if not 1 <= forget_people < len(people):
            raise ValueError(f"cannot forget {forget_people} people: the dataset has {len(people)} (at least one "
                             "must remain)")
        chosen = list(rng.choice(people, size=int(forget_people), replace=False))
    else:
        chosen = list(forget_people)
        known = set(people.tolist())
        for person in chosen:
            if _plain(person) not in known:
                raise ValueError(f"unknown person {person!r} in forget_people")
        if not chosen or len(set(chosen)) == len(people):
            raise ValueError(f"forget_people must name between 1 and {len(people) - 1} people, got {len(set(chosen))}")
    forget_mask = np.isin(dataset.person_ids, np.asarray(chosen, dtype=dataset.person_ids.dtype))
    others = rng.permutation(np.flatnonzero(~forget_mask))
    n_val, n_test = round(val_share * len(dataset)), round(test_share * len(dataset))
    if n_val + n_test >= len(others):
        raise ValueError(f"no retain images left: {len(others)} non-forget images for {n_val} val and {n_test} test")
    indices = {"val": others[:n_val], "test": others[n_val:n_val + n_test], "retain": others[n_val + n_test:],
               "forget": np.flatnonzero(forget_mask)}
    indices = {k: np.sort(v).astype(np.int64) for k, v in indices.items()}
    indices["train"] = np.sort(np.concatenate([indices["retain"], indices["forget"]]))
    return FaceSplits(dataset, indices, sorted(_plain(p) for p in chosen), seed)


def read_splits(directory: str | Path, dataset: FaceAgeDataset) -> FaceSplits:
    """Read the `splits.json` written by `FaceSplits.write_splits`, checking it belongs to `dataset`."""
    path = Path(directory) / "splits.json"
    if not path.is_file():
        raise FileNotFoundError(f"no splits file: {path}")
    record = json.loads(path.read_text())
    if record.get("fingerprint") != dataset.fingerprint():
        raise ValueError(f"{path} was written for another dataset (fingerprint {record.get('fingerprint')!r}, "
                         f"this dataset {dataset.fingerprint()!r})")
    indices = {k: np.asarray(v, dtype=np.int64) for k, v in record["indices"].items()}
    return FaceSplits(dataset, indices, record["forget_people"], record["seed"])


def make_loaders(splits: FaceSplits, batch_size: int = 64, seed: int = 0,
                 num_workers: int = 0) -> dict[str, DataLoader]:
    """Challenge-style loaders: `retain`, `forget`, `val` and `train` shuffle; `test` does not.

    Each shuffling loader has its own generator seeded from `seed`, so the batch order is reproducible.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    loaders = {}
    for offset, name in enumerate(("retain", "forget", "val", "test", "train")):
        shuffle = name != "test"
        generator = torch.Generator().manual_seed(seed * 1009 + offset) if shuffle else None
        loaders[name] = DataLoader(splits.subset(name), batch_size=batch_size, shuffle=shuffle,
                                   generator=generator, num_workers=num_workers)
    return loaders


def evaluation_loader(dataset: FaceAgeDataset, batch_size: int = 256) -> DataLoader:
    """A loader in dataset order, for predictions and per-example statistics."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)
