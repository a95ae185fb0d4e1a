"""User data: a CSV list or a folder per split, and a proxy retain folder.

CSV (paths relative to the CSV's folder, or absolute)::

    path,split,box,person_id
    tiles/a.png,forget,"12,30,20,20",7
    tiles/b.png,retain,,
    tiles/c.png,holdout_forget,,
    tiles/d.png,holdout_retain,,

`split` is one of `forget`, `retain`, `holdout_forget`, `holdout_retain`. `box` (optional) is
`top,left,height,width` in pixels of the content to forget (e.g. a face) and may only be given on forget
rows; a forget image without a box is forgotten whole. `person_id` (optional) is an integer.

The CSV may be UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), or UTF-16 with one; other
encodings are refused with the file named. Columns are separated by commas, or by semicolons or tabs when the
header line holds no comma (Excel in some locales).

Folder: `root/forget/`, `root/retain/` and optionally `root/holdout_forget/`, `root/holdout_retain/`, each
holding image files (no boxes; use a CSV for boxes). Every file in a split folder is read as an image,
whatever its suffix (anything Pillow opens: PNG, JPEG, GIF, TIFF, 16-bit and float grey, ...); a file that is
not one, or a sub-folder, is refused by name. Hidden files (names starting with `.`, e.g. `.DS_Store`) and
the system files `Thumbs.db` and `desktop.ini` are skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from imgunlearn.data.splits import CSV_SPLITS, SPLIT_TO_CSV, SPLITS, ImageSet, split_kind
from imgunlearn.reading import read_text

SYSTEM_FILES = ("thumbs.db", "desktop.ini")
CSV_COLUMNS = ("path", "split", "box", "person_id")


def load_user_splits(source: str | Path, resize: int | None = None) -> dict[str, ImageSet]:
    """The four splits of a CSV file or a split folder (see the module docstring)."""
    source = Path(source)
    if source.is_file():
        return read_csv(source, resize)
    if source.is_dir():
        return read_folder(source, resize)
    raise FileNotFoundError(f"data source not found: {source} (expected 'synthetic', a CSV file or a folder)")


def read_csv(path: str | Path, resize: int | None = None) -> dict[str, ImageSet]:
    """Splits listed in a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    text = read_text(path)
    header = text.split("\n", 1)[0]
    delimiter = "," if "," in header else ";" if ";" in header else "\t" if "\t" in header else ","
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown or "path" not in columns or "split" not in columns:
            raise ValueError(f"{path}: columns {columns} must include 'path' and 'split' and may add 'box' and "
                             f"'person_id'" + (f"; unknown: {unknown}" if unknown else ""))
        rows = list(reader)
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: not a readable CSV line: {e}") from None
    entries: dict[str, list[tuple[Path, np.ndarray, int]]] = {name: [] for name in SPLITS}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{path}, line {line}"
        if None in row:  # csv.DictReader keeps values beyond the header under the key None
            raise ValueError(f"{where}: {len(columns) + len(row[None])} values for {len(columns)} columns "
                             f"{columns} (quote a box: \"top,left,height,width\")")
        split = (row["split"] or "").strip()
        if split not in CSV_SPLITS:
            raise ValueError(f"{where}: unknown split {split!r}; use one of {', '.join(CSV_SPLITS)}")
        if not (row["path"] or "").strip():
            raise ValueError(f"{where}: empty path")
        image_path = Path(row["path"].strip())
        image_path = (image_path if image_path.is_absolute() else path.parent / image_path).absolute()
        box = parse_box(row.get("box") or "", where)
        if box[0] >= 0 and split_kind(split) == "retain":
            raise ValueError(f"{where}: box {row['box']!r} given for a {split} image; boxes mark content to forget")
        entries[CSV_SPLITS[split]].append((image_path, box, parse_id(row.get("person_id") or "", where)))
    return {
        name: ImageSet.from_files([e[0] for e in items], np.array([e[1] for e in items]).reshape(-1, 4),
                                  np.array([e[2] for e in items], dtype=np.int64), resize,
                                  what=f"{SPLIT_TO_CSV[name]} images")
        for name, items in entries.items()
    }


def read_folder(root: str | Path, resize: int | None = None) -> dict[str, ImageSet]:
    """Splits as sub-folders `forget`, `retain`, `holdout_forget`, `holdout_retain` of `root`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in CSV_SPLITS
                     and not p.name.startswith("."))
    if unknown:
        raise ValueError(f"{root}: unknown split folders {unknown}; use {', '.join(CSV_SPLITS)}")
    if not (root / "forget").is_dir():
        raise FileNotFoundError(f"{root} has no 'forget' folder; a split folder holds {', '.join(CSV_SPLITS)}")
    splits = {}
    for csv_name, name in CSV_SPLITS.items():
        folder = root / csv_name
        paths = list_images(folder) if folder.is_dir() else []
        splits[name] = ImageSet.from_files(paths, resize=resize, what=f"{csv_name} images")
    return splits


def read_image_folder(folder: str | Path, resize: int | None = None, what: str = "images") -> ImageSet:
    """Every image file directly inside `folder` (sorted by name), e.g. a proxy retain set."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{what} folder {folder} holds no images")
    return ImageSet.from_files(paths, resize=resize, what=what)


def list_images(folder: Path) -> list[Path]:
    """Every file directly inside `folder`, sorted by name, to be read as an image whatever its suffix.

    Hidden files (`.name`) and `Thumbs.db` / `desktop.ini` are skipped; a sub-folder is an error, so that no
    image is left out without a word.
    """
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower() not in SYSTEM_FILES]
    folders = sorted(p.name for p in entries if p.is_dir())
    if folders:
        raise ValueError(f"{folder}: holds sub-folders {folders}; a split folder holds image files only (move "
                         f"them out, or list the images in a CSV)")
    broken = sorted(p.name for p in entries if not p.is_file())
    if broken:
        raise ValueError(f"{folder}: {broken} are neither files nor folders (broken links?)")
    return sorted(p.absolute() for p in entries if p.is_file())


def parse_box(text: str, where: str) -> np.ndarray:
    """`"top,left,height,width"` -> int64 `[4]`; empty -> no box (-1s)."""
    text = text.strip()
    if not text:
        return np.full(4, -1, dtype=np.int64)
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] < 1 or values[3] < 1 or values[0] < 0 or values[1] < 0:
        raise ValueError(f"{where}: malformed box {text!r}; expected 'top,left,height,width' with non-negative "
                         f"integers and positive height and width")
    return np.array(values, dtype=np.int64)


def parse_id(text: str, where: str) -> int:
    text = text.strip()
    if not text:
        return -1
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: person_id {text!r} is not an integer") from None
