"""The pool's code digest covers what the challenge runs and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import imgunlearn
from imgunlearn.challenge.pool.hashing import challenge_code_files, code_digest, package_digest


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    root = tmp_path / "imgunlearn"
    shutil.copytree(Path(imgunlearn.__file__).resolve().parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_installed_digest_is_the_package_digest() -> None:
    assert code_digest() == package_digest(Path(imgunlearn.__file__).resolve().parent)


def test_files_are_the_challenge_package_and_what_it_imports(package: Path) -> None:
    names = {path.relative_to(package).as_posix() for path in challenge_code_files(package)}
    assert {p.relative_to(package).as_posix() for p in (package / "challenge").rglob("*.py")} <= names
    assert {"__init__.py", "io.py", "registry.py", "runs.py"} <= names  # imported by challenge modules
    assert not any(name.startswith(("models/", "methods/", "evaluation/")) for name in names)


@pytest.mark.parametrize("edited, changes", [
    ("challenge/methods/finetune.py", True),    # a method the pool runs
    ("io.py", True),                            # a shared module the challenge imports
    ("models/unet.py", False),                  # image-to-image only
    ("methods/encoder_teacher.py", False),
])
def test_digest_changes_only_with_code_the_challenge_runs(package: Path, edited: str, changes: bool) -> None:
    before = package_digest(package)
    _append(package / edited, "\n# edited\n")
    assert (package_digest(package) != before) == changes, edited


def test_module_imported_inside_a_function_counts(package: Path) -> None:
    (package / "extra_helper.py").write_text("VALUE = 1\n", encoding="utf-8")
    before = package_digest(package)
    _append(package / "extra_helper.py", "VALUE = 2\n")
    assert package_digest(package) == before  # nothing imports it yet
    _append(package / "challenge" / "report.py",
            "\n\ndef _late() -> int:\n    from ..extra_helper import VALUE\n    return VALUE\n")
    assert "extra_helper.py" in {p.name for p in challenge_code_files(package)}
    with_import = package_digest(package)
    _append(package / "extra_helper.py", "VALUE = 3\n")
    assert package_digest(package) != with_import
