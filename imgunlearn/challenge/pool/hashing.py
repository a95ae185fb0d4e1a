"""What identifies a pool member: content hashes of data, weights and code, and the members' seeds.

A member's input hash covers everything that could change its numbers: the data split, the original's weights,
the training recipe or the method's settings, the seed, and the code that ran. The code is the whole
`imgunlearn` package (`code_digest`: its version and a digest of every `.py` file in it), plus, for a user's
function, the full source of the file it is defined in (`hash_callable`). Changing a helper a method calls, or
a user module's global, therefore gives new members instead of mixing two versions in one pool.
"""

from __future__ import annotations

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


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """`"<version>+<sha256 prefix>"` of the installed `imgunlearn` package: its version and every `.py` file in it."""
    import imgunlearn

    root = Path(imgunlearn.__file__).resolve().parent
    digest = hashlib.sha256(imgunlearn.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"{imgunlearn.__version__}+{digest.hexdigest()[:16]}"


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
