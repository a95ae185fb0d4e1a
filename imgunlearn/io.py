"""Atomic file writes: a uniquely named temporary file in the target's folder, then a rename over the target.

Readers never see a half-written file, and two processes writing the same file never share a temporary file
(the last rename wins). The target's folder is created if needed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new hidden `.NAME.RANDOM.tmp` beside `path` with the permissions a plain `open` would give."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[IO[bytes]], Any], fsync: bool = False) -> None:
    """Write `data` to `path` atomically.

    Args:
        path: The file to create or replace.
        data: The bytes, or a function that writes them to the binary file object it is given
            (e.g. `lambda f: np.savez(f, ...)`).
        fsync: Flush the file to disk before the rename (survives a power cut, slower).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                data(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Write `text` to `path` atomically, UTF-8 encoded, line endings as given."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: str | Path, obj: Any, *, end: str = "", fsync: bool = False, **options: Any) -> None:
    """Write `obj` as JSON (indented by 2 unless `options` say otherwise) to `path` atomically.

    Args:
        path: The file to create or replace.
        obj: The value to write.
        end: Text after the JSON (e.g. `"\\n"`).
        fsync: Flush the file to disk before the rename.
        **options: Further `json.dumps` arguments (`sort_keys`, `default`, `allow_nan`, ...).
    """
    options.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(obj, **options) + end, fsync=fsync)
