"""No import cycle anywhere in imgunlearn/, every import statement counted (scripts/check_imports.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "pkg"


def test_imgunlearn_has_no_import_cycle(capsys):
    assert _checker().main([str(ROOT / "imgunlearn")]) == 0, capsys.readouterr().out


def test_deferred_relative_and_submodule_imports_are_counted(tmp_path, capsys):
    check = _checker()
    package = _package(tmp_path, {
        "__init__.py": "from pkg.a import f\n",
        "a.py": "def f():\n    from .sub import b  # deferred, relative\n    return b\n",
        "sub/__init__.py": "",
        "sub/b.py": "import pkg.c\n",
        "c.py": "from pkg import a\n",  # pkg.a is a module: the edge goes to it, closing a -> sub.b -> c -> a
        "d.py": "from pkg.sub import b\nfrom pkg.a import f\n",  # imports, but on no cycle
    })
    graph = check.import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.sub.b", "pkg.a"}
    assert check.find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    assert check.main([str(package)]) == 1
    assert "import cycle: pkg.a -> pkg.sub.b -> pkg.c -> pkg.a" in capsys.readouterr().out


def test_a_package_without_cycles_passes(tmp_path):
    check = _checker()
    package = _package(tmp_path, {"__init__.py": "from pkg import a\n", "a.py": "import os\nfrom pkg import b\n",
                                  "b.py": "from . import c\n", "c.py": ""})
    assert check.find_cycles(check.import_graph(package)) == []
