"""Reading user files: text in its encoding, images at any bit depth; every error names the file.

Text (CSV lists): UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), or UTF-16 / UTF-32 with a
byte-order mark. Other encodings (Latin-1, Windows-1252, ...) cannot be told apart reliably, so they are
refused with the file, line and byte named instead of being guessed.

Images: anything Pillow opens (PNG, JPEG, GIF, BMP, TIFF, WebP, ..., with or without a file suffix; the
first frame of a multi-frame file), returned as 8-bit RGB. High-bit-depth images are scaled, not clipped:
16-bit grey (`I;16`, and `I` holding values up to 65535) is divided by 65535, 32-bit float grey (`F`) must
hold values in [0, 1]; 16-bit RGB is reduced to 8 bits by Pillow itself. Grey images are repeated over
the three channels and an alpha channel is dropped.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
from PIL import Image

BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
SCALED_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def read_text(path: str | Path) -> str:
    """The text of `path`: UTF-8 (a byte-order mark is removed) or UTF-16 / UTF-32 with a byte-order mark.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: The file is not text in one of those encodings (names the file, line and byte).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    data = path.read_bytes()
    encoding = next((name for bom, name in BOMS if data.startswith(bom)), "utf-8")
    if data.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path}: is a zip archive (an Excel workbook?), not a CSV text file; save it as "
                         f"'CSV UTF-8'")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}: not {encoding.upper().replace('-SIG', '')} text (byte {data[e.start]:#04x} "
                         f"on line {line}); save it as UTF-8 (Excel: 'CSV UTF-8')") from None


def open_rgb(path: str | Path) -> Image.Image:
    """The image at `path` as an 8-bit RGB Pillow image (see the module docstring for bit depths).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: Pillow cannot decode the file, or its values cannot be scaled (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in SCALED_MODES:
                values = np.asarray(image, dtype=np.float64)  # [H, W]
            else:
                rgb = image.convert("RGB")
    except Exception as e:  # Pillow raises OSError, SyntaxError, EOFError, zlib/struct errors on broken files
        raise ValueError(f"cannot read image {path}: {_reason(e)}") from e
    if mode in SCALED_MODES:
        return Image.fromarray(_scaled_grey(values, mode, path)).convert("RGB")
    return rgb


def check_image(path: str | Path) -> tuple[int, int]:
    """`(H, W)` of the image at `path` after checking it without decoding every pixel (header, and for PNG
    the chunk checksums); images that need scaling (16-bit, float) are decoded to check their values.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: Pillow cannot open the file (names the file and the reason).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            size, mode = (image.height, image.width), image.mode
            image.verify()
    except Exception as e:  # see open_rgb
        raise ValueError(f"cannot read image {path}: {_reason(e)}") from e
    if mode in ("I", "F"):
        open_rgb(path)  # the value range decides whether the image can be scaled
    return size


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"


def _scaled_grey(values: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """uint8 `[H, W]` for the values `[H, W]` of a 16-bit integer or 32-bit float grey image."""
    high = 1.0 if mode == "F" else 65535.0
    finite = bool(np.isfinite(values).all())
    if not finite or (values.size and (values.min() < 0 or values.max() > high)):
        span = "non-finite values" if not finite else f"values {values.min():g}..{values.max():g}"
        kind = "float" if mode == "F" else "integer"
        raise ValueError(f"cannot read image {path}: {kind} image (mode {mode}) with {span}; expected 0..{high:g}")
    return np.round(values / high * 255.0).astype(np.uint8)
