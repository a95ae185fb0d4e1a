"""What identifies a pool member: content hashes of data, weights and code, and the members' seeds.

A member's input hash covers everything that could change its numbers: the data split, the original's weights,
the training recipe or the method's settings, the seed, and the code that ran. The code is every `.py` file
of `imgunlearn.challenge` and of every `imgunlearn` module it imports, directly or through another
(`code_digest`; the image-to-image models, methods and metrics are outside it), plus, for a user's function, the
full source of the file it is defined in (`hash_callable`). Changing a helper a method calls, or a user module's
global, therefore gives new members instead of mixing two versions in one pool; editing an image-to-image model
does not throw a pool away.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from imgunlearn.challenge.training import split_batch


def hash_json(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def hash_dataset(dataset: Dataset) -> str:
    """Content hash of a dataset: its own `content_hash()`, its in-memory `images` and `age_group`, or every item."""
    own = getattr(dataset, "content_hash", None)
    if callable(own):
        return str(own())
    images, labels = getattr(dataset, "images", None), getattr(dataset, "age_group", None)
    if isinstance(images, Tensor) and labels is not None and len(images) == len(dataset):  # in-memory fast path
        digest = hashlib.sha256(f"{images.dtype}:{tuple(images.shape)}".encode())
        digest.update(images.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        return digest.hexdigest()
    digest = hashlib.sha256()
    for index in range(len(dataset)):
        image, label = split_batch(dataset[index])
        image = torch.as_tensor(image).detach().cpu().contiguous()
        digest.update(str((index, image.dtype, tuple(image.shape), int(label))).encode())
        digest.update(image.numpy().tobytes())
    return digest.hexdigest()


def hash_state_dict(module: nn.Module) -> str:
    """Hash of a module's weights and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _imported_modules(path: Path, package_root: Path) -> set[str]:
    """Dotted names of the `imgunlearn` modules `path` imports anywhere in it (top level or inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = path.relative_to(package_root.parent).with_suffix("").parts  # ("imgunlearn", "challenge", "data")
    package = here[:-1]  # the package a relative import starts from
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from .x import y` inside package `package`
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in names if name == "imgunlearn" or name.startswith("imgunlearn.")}


def challenge_code_files(package_root: Path) -> list[Path]:
    """The files `imgunlearn.challenge` runs: its own `.py` files and every `imgunlearn` module they import.

    Imports are followed statically (the `ast` of each file, `import` statements anywhere in it), so a module
    imported only inside a function counts too. A dotted name that is a package brings its `__init__.py`.
    """
    def file_of(name: str) -> Path | None:
        path = package_root.joinpath(*name.split(".")[1:])  # "imgunlearn.io" -> <root>/io
        for candidate in (path / "__init__.py", path.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    pending = sorted((package_root / "challenge").rglob("*.py"))
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path, package_root):
            for prefix in (name.split(".")[:k] for k in range(1, name.count(".") + 2)):  # parents' __init__ run too
                found = file_of(".".join(prefix))
                if found is not None and found not in seen:
                    pending.append(found)
    return sorted(seen)


def package_digest(package_root: Path) -> str:
    """`"<version>+<sha256 prefix>"`: the package version and every file of `challenge_code_files(package_root)`."""
    import imgunlearn

    digest = hashlib.sha256(imgunlearn.__version__.encode())
    for path in challenge_code_files(package_root):
        digest.update(path.relative_to(package_root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"{imgunlearn.__version__}+{digest.hexdigest()[:16]}"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """`package_digest` of the installed `imgunlearn` package (computed once per process)."""
    import imgunlearn

    return package_digest(Path(imgunlearn.__file__).resolve().parent)


def _source_file_text(target: Any) -> str | None:
    """The full text of the file `target` (a function or class) is defined in, or None."""
    try:
        path = inspect.getsourcefile(target)
    except TypeError:
        return None
    if path is None or not Path(path).is_file():
        return None
    return Path(path).read_text(encoding="utf-8", errors="replace")


def hash_callable(fn: Callable[..., Any]) -> str:
    """Hash of what an unlearning callable runs: the whole file it is defined in, its own source, its `repr`.

    Registered methods are objects whose `repr` lists their hyperparameters, so other hyperparameters give
    another hash; their code is inside `imgunlearn` and is covered by `code_digest` as well. A user's function
    is hashed with the full source of its module file, so a change to a helper or a global there counts. Without
    source (a builtin, an interactive definition) the qualified name stands in.
    """
    fn = inspect.unwrap(fn)
    target = fn if inspect.isroutine(fn) or inspect.isclass(fn) else type(fn)
    parts = [f"{getattr(target, '__module__', '')}:{getattr(target, '__qualname__', repr(target))}"]
    try:
        parts.append(inspect.getsource(target))
    except (OSError, TypeError):
        pass
    file_text = _source_file_text(target)
    if file_text is not None:
        parts.append(file_text)
    if target is not fn:
        parts.append(repr(fn))
    return hashlib.sha256("\n\0".join(parts).encode()).hexdigest()


def derive_seed(base_seed: int, kind: str, index: int) -> int:
    """The seed of member `index` of pool `kind`: independent streams for every (base seed, kind, index)."""
    digest = hashlib.sha256(f"{base_seed}/{kind}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
