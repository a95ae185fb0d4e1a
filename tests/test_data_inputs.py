"""User inputs read right or refused by name: CSV encodings, image bit depths, split folders, broken files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgunlearn.data import read_csv, read_folder, read_image_folder
from imgunlearn.reading import open_rgb, read_text

ROWS = ["f0.png,forget,", "f1.png,forget,", "r0.png,retain,"]


def write_image(path: Path, seed: int = 0, size: int = 8, suffix_format: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=suffix_format)
    return path


def write_png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG, grey `[H, W]` or RGB `[H, W, 3]` uint16, written chunk by chunk (Pillow cannot write
    16-bit RGB)."""
    h, w = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter 0 per scanline
    header = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def tiles(tmp_path) -> Path:
    for i, name in enumerate(("f0.png", "f1.png", "r0.png")):
        write_image(tmp_path / name, seed=i)
    return tmp_path


# ---- CSV encodings -----------------------------------------------------------------------------------


def test_excel_csv_utf8_with_byte_order_mark_and_crlf_is_read(tiles):
    # Excel's "CSV UTF-8" starts with a byte-order mark and ends lines with CRLF; it was refused with
    # "unknown: ['\ufeffpath']"
    csv = tiles / "excel.csv"
    csv.write_bytes("\r\n".join(["path,split,box", *ROWS]).encode("utf-8-sig") + b"\r\n")
    splits = read_csv(csv)
    assert [Path(p).name for p in splits["forget_train"].names] == ["f0.png", "f1.png"]
    assert len(splits["retain_train"]) == 1


def test_utf16_and_semicolon_separated_csvs_are_read(tiles):
    csv = tiles / "unicode.csv"
    csv.write_bytes("\n".join(["path\tsplit", "f0.png\tforget", "r0.png\tretain"]).encode("utf-16"))
    assert [len(s) for s in read_csv(csv).values()] == [1, 1, 0, 0]
    csv = tiles / "semicolon.csv"
    csv.write_text('path;split;box\nf0.png;forget;1,1,2,2\nr0.png;retain;\n')
    assert read_csv(csv)["forget_train"].boxes.tolist() == [[1, 1, 2, 2]]


def test_latin1_csv_is_refused_naming_file_line_and_byte(tiles):
    write_image(tiles / "café.png", seed=5)
    csv = tiles / "latin1.csv"
    csv.write_bytes("path,split\nf0.png,forget\ncafé.png,retain\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{csv}: not UTF-8 text \(byte 0xe9 on line 3\); save it as UTF-8"):
        read_csv(csv)
    workbook = tiles / "book.csv"
    workbook.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(ValueError, match=rf"{workbook}: is a zip archive \(an Excel workbook\?\)"):
        read_csv(workbook)


def test_read_text_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_text(tmp_path / "nope.csv")


# ---- bit depths --------------------------------------------------------------------------------------


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(8, 8)
    path = write_png16(tmp_path / "grey16.png", values)
    assert Image.open(path).mode == "I;16"
    pixels = np.asarray(open_rgb(path))  # [8, 8, 3]
    expected = np.round(values / 65535 * 255).astype(np.uint8)
    assert np.array_equal(pixels, np.stack([expected] * 3, axis=-1))  # was 99.6% white: values clipped at 255
    assert pixels.mean() == pytest.approx(127.5, abs=1)


def test_16_bit_rgb_png_and_tiff_and_float_tiff(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    pixels = np.asarray(open_rgb(write_png16(tmp_path / "rgb16.png", rgb))).astype(int)
    assert np.abs(pixels - rgb / 65535 * 255).max() <= 1  # Pillow keeps the high byte
    grey = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.tif")
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "grey16.tif"))[..., 1], np.round(grey / 65535 * 255))
    floats = rng.random((8, 8), dtype=np.float32)
    Image.fromarray(floats).save(tmp_path / "float.tif")
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "float.tif"))[..., 0],
                          np.round(floats.astype(np.float64) * 255))


def test_float_images_outside_0_1_are_refused_by_name(tmp_path):
    Image.fromarray(np.full((8, 8), 200.0, np.float32)).save(tmp_path / "f.tif")
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "nan.tif")
    write_image(tmp_path / "r.png")
    (tmp_path / "list.csv").write_text("path,split\nf.tif,forget\nnan.tif,forget\nr.png,retain\n")
    with pytest.raises(ValueError) as error:
        read_csv(tmp_path / "list.csv")
    message = str(error.value)
    assert f"cannot read image {tmp_path / 'f.tif'}: float image (mode F) with values 200..200; expected 0..1" in message
    assert f"cannot read image {tmp_path / 'nan.tif'}: float image (mode F) with non-finite values" in message
    assert message.startswith("2 of 2 forget images cannot be read")


# ---- split folders -----------------------------------------------------------------------------------


def test_every_file_in_a_split_folder_is_read_whatever_its_suffix(tmp_path):
    forget = tmp_path / "forget"
    write_image(forget / "a.png", seed=1)
    write_image(forget / "b.gif", seed=2, suffix_format="GIF")
    write_image(forget / "c", seed=3)  # no suffix
    write_image(forget / "d.JPG", seed=4, suffix_format="JPEG")
    write_png16(forget / "e.png", np.full((8, 8), 30000, np.uint16))
    (forget / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: skipped (documented)
    (forget / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    write_image(tmp_path / "retain" / "r.png", seed=9)
    splits = read_folder(tmp_path)
    assert [Path(p).name for p in splits["forget_train"].names] == ["a.png", "b.gif", "c", "d.JPG", "e.png"]
    assert splits["forget_train"].images.shape == (5, 3, 8, 8)  # was 1 image: .gif and no suffix skipped


def test_non_images_and_sub_folders_in_a_split_folder_are_refused_by_name(tmp_path):
    write_image(tmp_path / "forget" / "a.png")
    write_image(tmp_path / "retain" / "r.png", seed=1)
    (tmp_path / "forget" / "notes.txt").write_text("shot on a sunny day")
    with pytest.raises(ValueError, match=rf"cannot read image {tmp_path / 'forget' / 'notes.txt'}: cannot identify"):
        read_folder(tmp_path)
    (tmp_path / "forget" / "notes.txt").unlink()
    (tmp_path / "forget" / "more").mkdir()
    with pytest.raises(ValueError, match=rf"{tmp_path / 'forget'}: holds sub-folders \['more'\]"):
        read_folder(tmp_path)
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy" / "readme.md").write_text("# open images")
    with pytest.raises(ValueError, match=r"cannot read image .*readme\.md"):
        read_image_folder(tmp_path / "proxy", what="proxy retain images")


# ---- broken files ------------------------------------------------------------------------------------


def corrupt_checksum(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 6] ^= 0xFF  # inside the image data: the chunk's CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def test_a_png_with_a_bad_checksum_is_named(tiles):
    bad = corrupt_checksum(tiles / "f1.png")
    with pytest.raises(ValueError, match=rf"^cannot read image {bad}: SyntaxError: broken PNG file"):
        read_csv(write_list(tiles))
    with pytest.raises(ValueError, match=rf"^cannot read image {bad}: "):
        open_rgb(bad)


def test_every_unreadable_file_is_named_in_one_error(tiles):
    first = corrupt_checksum(tiles / "f0.png")
    second = corrupt_checksum(tiles / "f1.png")
    with pytest.raises(ValueError, match=r"^2 of 2 forget images cannot be read") as error:
        read_csv(write_list(tiles))
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_a_file_broken_after_its_header_is_named_when_decoded(tmp_path):
    write_image(tmp_path / "f.jpg", size=64, suffix_format="JPEG")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "f.jpg").write_bytes(data[: len(data) * 2 // 3])
    write_image(tmp_path / "r.png", size=64)
    (tmp_path / "list.csv").write_text("path,split\nf.jpg,forget\nr.png,retain\n")
    splits = read_csv(tmp_path / "list.csv")  # the header is intact: the file is only decoded when used
    with pytest.raises(ValueError, match=rf"^cannot read image {tmp_path / 'f.jpg'}: image file is truncated"):
        splits["forget_train"].image(0)


def write_list(folder: Path) -> Path:
    path = folder / "list.csv"
    path.write_text("\n".join(["path,split,box", *ROWS]) + "\n")
    return path


def test_a_row_with_more_values_than_columns_is_refused(tiles):
    csv = tiles / "list.csv"
    csv.write_text("path,split,box\nf0.png,forget,1,1,2,2\nr0.png,retain,\n")
    with pytest.raises(ValueError, match=rf"^{csv}, line 2: 6 values for 3 columns .*quote a box"):
        read_csv(csv)
