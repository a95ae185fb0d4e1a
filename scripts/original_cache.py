"""Pretrained originals cached by their configuration, so a benchmark rerun reuses them instead of training again.

An entry is `CACHE/<key>/` where key = sha256 of the canonical JSON of (the model's full config, the data settings,
the pretraining recipe, the imgunlearn and torch versions). It holds:

    original/     the model with its task (config.json, model.safetensors, task.json)
    demo.json     {"timings": {"pretrain_s": ...}}: what `imgunlearn demo --original CACHE/<key>/original` reads
    key.json      what was hashed, for a person to read

An entry is built in a temporary sibling directory and renamed into place when complete, so a killed run leaves
no half entry, and two runs that build the same entry at once keep the first one finished.

    from original_cache import cached_original     # scripts/ is on sys.path when a script there runs
    directory = cached_original("runs/original_cache", "unet_small", data_args, steps=1800)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import torch

import imgunlearn
from imgunlearn.api import pretrain, save
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.io import write_json
from imgunlearn.models import create_model


def original_key(model_config: dict[str, Any], data_args: dict[str, Any], recipe: dict[str, Any]) -> tuple[str, dict]:
    """The cache key (hex sha256) and the dict it hashes."""
    contents = {"model": model_config, "data": data_args, "recipe": recipe,
                "versions": {"imgunlearn": imgunlearn.__version__, "torch": torch.__version__}}
    canonical = json.dumps(contents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest(), contents


def cached_original(cache: str | Path, model: str, data_args: dict[str, Any], steps: int, lr: float = 2e-3,
                    warmup_steps: int = 20, seed: int = 0, accelerator: str = "cpu", progress: bool = True,
                    model_kwargs: dict[str, Any] | None = None) -> Path:
    """The cache entry of the original `model` pretrained on `ForgetRetainDataModule(**data_args)`; trains it first
    when the cache has no entry for this configuration.

    Args:
        cache: The cache folder (created if needed).
        model: A registered model name; its full config (defaults included) enters the key.
        data_args: The data module's keyword arguments (JSON values).
        steps, lr, warmup_steps: The pretraining recipe (`imgunlearn.pretrain`'s arguments).
        seed: Seeds torch before the data and the model are made (as the demo does).
        accelerator, progress: How to train; not part of the key.
        model_kwargs: Overrides of the registered preset (they enter the key through the model's config).

    Returns:
        The entry's directory; the model is in its `original/` folder.
    """
    recipe = {"steps": steps, "lr": lr, "warmup_steps": warmup_steps, "seed": seed, "trainer": "imgunlearn.pretrain"}
    model_kwargs = dict(model_kwargs or {})
    key, contents = original_key(create_model(model, **model_kwargs).config, data_args, recipe)
    cache = Path(cache)
    entry = cache / key
    if (entry / "original" / "model.safetensors").is_file():
        return entry
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f".{key}.incomplete-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        torch.manual_seed(seed)  # the demo's order: seed, data, then the model's initial weights
        data = ForgetRetainDataModule(**data_args)
        data.setup("fit")
        start = time.perf_counter()
        trained = pretrain(create_model(model, **model_kwargs), data, max_steps=steps, lr=lr, warmup_steps=warmup_steps, accelerator=accelerator,
                           progress=progress)
        seconds = time.perf_counter() - start
        save(trained, work / "original", data.task)
        write_json(work / "demo.json", {"timings": {"pretrain_s": seconds}, "pretrain_steps": steps, "model": model})
        write_json(work / "key.json", {"key": key, **contents}, sort_keys=True)
        try:
            os.replace(work, entry)
        except OSError:  # another run finished the same entry first: keep it
            if not (entry / "original" / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry
