"""Atomic writes: content, permissions, failure handling and no leftovers."""

import json
import os
import stat

import pytest

from imgunlearn.io import atomic_write_bytes, atomic_write_text, write_json


def test_writes_replace_and_leave_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second ✓\r\n", fsync=True)
    assert path.read_bytes() == "second ✓\r\n".encode()
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_bytes_or_writer(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_bytes(tmp_path / "b.bin", lambda f: f.write(b"\x02"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.bin").read_bytes() == b"\x02"


def test_failed_writer_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write_text(path, "old")

    def fail(handle):
        handle.write(b"partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write_bytes(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644


def test_write_json_options(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"b": 1, "a": [1.5]}, sort_keys=True, end="\n")
    assert path.read_text() == json.dumps({"a": [1.5], "b": 1}, indent=2) + "\n"
    with pytest.raises(ValueError):
        write_json(path, {"x": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text()) == {"a": [1.5], "b": 1}
