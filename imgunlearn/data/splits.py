"""Split names and `ImageSet`, the images of one split (in memory or as files read on demand).

Four splits, each of one kind (forget or retain):

    forget_train    images the model saw and must forget (the anchor of unlearning)
    retain_train    images the model saw and must keep doing well on
    forget_holdout  unseen images of the forget kind (for the synthetic survey: other people's faces)
    retain_holdout  unseen images of the retain kind

CSV files and folders name them `forget`, `retain`, `holdout_forget`, `holdout_retain`; both spellings
are accepted wherever a split is named.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imgunlearn.reading import check_image, open_rgb

SPLITS = ("forget_train", "retain_train", "forget_holdout", "retain_holdout")
CSV_SPLITS = {"forget": "forget_train", "retain": "retain_train",
              "holdout_forget": "forget_holdout", "holdout_retain": "retain_holdout"}
SPLIT_TO_CSV = {v: k for k, v in CSV_SPLITS.items()}
PROXY_RETAIN = "proxy_retain"
NO_BOX = (-1, -1, -1, -1)
MAX_NAMED = 10  # unreadable files named in one error


def canonical_split(name: str) -> str:
    """`forget_train` etc. for either spelling (`forget` -> `forget_train`); `proxy_retain` as is."""
    if name in SPLITS or name == PROXY_RETAIN:
        return name
    if name in CSV_SPLITS:
        return CSV_SPLITS[name]
    known = ", ".join((*SPLITS, *CSV_SPLITS, PROXY_RETAIN))
    raise ValueError(f"unknown split {name!r}; known: {known}")


def split_kind(name: str) -> str:
    """`"forget"` or `"retain"`: what the images of split `name` are."""
    return "forget" if canonical_split(name).startswith("forget") else "retain"


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode `path` as RGB (high bit depths scaled, see `imgunlearn.reading`), optionally resized (bicubic) to `size` =
    (H, W): uint8 `[3, H, W]`. Errors name the file."""
    image = open_rgb(path)
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()  # [H, W, 3] -> [3, H, W]


@dataclass
class ImageSet:
    """The images of one split, their forget boxes and ids.

    Build one with `from_arrays` (pixels in memory) or `from_files` (decoded on demand; files are checked
    when the set is built).

    Attributes:
        names: One name per image: the file path, or a tile name for in-memory images.
        boxes: int64 `[N, 4]` boxes `(top, left, height, width)` of the content to forget, in the pixels
            `image(i)` returns; rows of -1 = no box.
        ids: int64 `[N]` person / face ids, -1 = unknown.
        size: `(H, W)` of every image.
        pixels: uint8 `[N, 3, H, W]` when in memory, else None.
    """

    names: list[str]
    boxes: np.ndarray
    ids: np.ndarray
    size: tuple[int, int]
    pixels: np.ndarray | None = None
    _resize: bool = field(default=False, repr=False)

    @classmethod
    def from_arrays(cls, names: list[str], pixels: np.ndarray, boxes: np.ndarray | None = None,
                    ids: np.ndarray | None = None) -> ImageSet:
        """In-memory images `pixels` uint8 `[N, 3, H, W]`; boxes default to none, ids to -1."""
        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8 [N, 3, H, W], got {pixels.dtype} {tuple(pixels.shape)}")
        n = len(pixels)
        boxes = np.full((n, 4), -1, dtype=np.int64) if boxes is None else np.asarray(boxes, dtype=np.int64)
        ids = np.full(n, -1, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(names) != n or boxes.shape != (n, 4) or ids.shape != (n,):
            raise ValueError(f"{n} images need {n} names, [N, 4] boxes and [N] ids; got {len(names)}, "
                             f"{tuple(boxes.shape)}, {tuple(ids.shape)}")
        h, w = pixels.shape[-2:]
        for name, box in zip(names, boxes, strict=True):
            check_box(box, (h, w), name)
        return cls(list(names), boxes, ids, (h, w), pixels)

    @classmethod
    def from_files(cls, paths: list[Path], boxes: np.ndarray | None = None, ids: np.ndarray | None = None,
                   resize: int | None = None, what: str = "images") -> ImageSet:
        """Images read from `paths` on demand.

        Every file must exist and be a readable image, and every box must lie inside its image. Without
        `resize` all images must share one size; with it they are resized to `resize × resize` and their
        boxes scaled alike.

        Args:
            paths: Image files.
            boxes: `[N, 4]` boxes in each file's own pixels (rows of -1 = none).
            ids: `[N]` person ids (-1 = unknown).
            resize: Side every image is resized to, or None.
            what: What the images are, for error messages (e.g. "forget images").
        """
        n = len(paths)
        boxes = np.full((n, 4), -1, dtype=np.int64) if boxes is None else np.array(boxes, dtype=np.int64)
        ids = np.full(n, -1, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        sizes = image_sizes(paths, what)
        for path, box, hw in zip(paths, boxes, sizes, strict=True):
            check_box(box, hw, str(path))
        if resize is not None:
            if resize < 1:
                raise ValueError(f"resize must be a positive side in pixels, got {resize}")
            for i, (h, w) in enumerate(sizes):
                if boxes[i, 0] >= 0:
                    boxes[i] = scale_box(boxes[i], (h, w), (resize, resize))
            size = (resize, resize)
        else:
            distinct = sorted(set(sizes))
            if len(distinct) > 1:
                first = {hw: p for p, hw in zip(paths, sizes, strict=True)}
                examples = ", ".join(f"{first[hw]} is {hw[0]}x{hw[1]}" for hw in distinct[:3])
                raise ValueError(f"{what} have mixed sizes ({examples}); set resize to one side in pixels")
            size = distinct[0] if distinct else (0, 0)
        return cls([str(p) for p in paths], boxes, ids, size, None, resize is not None)

    def __len__(self) -> int:
        return len(self.names)

    def image(self, index: int) -> np.ndarray:
        """Image `index` as uint8 `[3, H, W]`."""
        if self.pixels is not None:
            return self.pixels[index]
        return read_image(Path(self.names[index]), self.size if self._resize else None)

    @property
    def images(self) -> np.ndarray:
        """Every image, uint8 `[N, 3, H, W]` (files are decoded)."""
        if self.pixels is not None:
            return self.pixels
        if len(self) == 0:
            return np.zeros((0, 3, *self.size), dtype=np.uint8)
        return np.stack([self.image(i) for i in range(len(self))])

    def fingerprints(self) -> list[str]:
        """A content hash per image (file bytes, or pixels when in memory), to find the same image twice."""
        if self.pixels is not None:
            return [hashlib.sha1(p.tobytes()).hexdigest() for p in self.pixels]
        return [hashlib.sha1(Path(n).read_bytes()).hexdigest() for n in self.names]

    def materialize(self) -> ImageSet:
        """The same set with every image decoded into memory."""
        return ImageSet(list(self.names), self.boxes.copy(), self.ids.copy(), self.size, self.images)


def image_size(path: Path) -> tuple[int, int]:
    """`(H, W)` of an image file, checking that it exists and is readable (see `reading.check_image`)."""
    return check_image(path)


def image_sizes(paths: list[Path], what: str = "images") -> list[tuple[int, int]]:
    """`(H, W)` of every file in `paths`; a missing file raises FileNotFoundError, and every file that cannot
    be read is named in one ValueError."""
    sizes, problems = [], []
    for path in paths:
        try:
            sizes.append(check_image(path))
        except ValueError as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        shown = "; ".join(problems[:MAX_NAMED])
        more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        raise ValueError(f"{len(problems)} of {len(paths)} {what} cannot be read: {shown}{more}")
    return sizes


def check_box(box: np.ndarray, size: tuple[int, int], name: str) -> None:
    """Raise unless `box` (top, left, height, width) is all -1 or lies inside an image of `size` (H, W)."""
    top, left, h, w = (int(v) for v in box)
    if (top, left, h, w) == NO_BOX:
        return
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > size[0] or left + w > size[1]:
        raise ValueError(f"box (top={top}, left={left}, height={h}, width={w}) of {name} is outside its "
                         f"{size[0]}x{size[1]} image")


def scale_box(box: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """`box` of an image of `size` mapped to the same content after resizing to `new_size`."""
    sy, sx = new_size[0] / size[0], new_size[1] / size[1]
    top, left = round(box[0] * sy), round(box[1] * sx)
    bottom, right = round((box[0] + box[2]) * sy), round((box[1] + box[3]) * sx)
    top, left = min(top, new_size[0] - 1), min(left, new_size[1] - 1)
    return np.array([top, left, max(1, bottom - top), max(1, right - left)], dtype=np.int64)


def format_box(box: np.ndarray) -> str:
    """`"top,left,height,width"`, or `""` for no box."""
    return "" if tuple(int(v) for v in box) == NO_BOX else ",".join(str(int(v)) for v in box)


def split_table(splits: dict[str, ImageSet]) -> str:
    """The split lists as CSV text: `split,index,name,box,id,sha1`, one row per image."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "index", "name", "box", "id", "sha1"])
    for name, images in splits.items():
        for i, (image_name, box, id_, digest) in enumerate(
            zip(images.names, images.boxes, images.ids, images.fingerprints(), strict=True)
        ):
            writer.writerow([name, i, image_name, format_box(box), int(id_), digest])
    return buffer.getvalue()
