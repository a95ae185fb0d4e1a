"""Pretrained originals cached by their configuration, so a benchmark rerun reuses them instead of training again.

An entry is `CACHE/<key>/` where key = sha256 of the canonical JSON of (the model's full config, the data settings,
the pretraining recipe, the imgunlearn and torch versions). It holds:

    original/     the model with its task (config.json, model.safetensors, task.json)
    demo.json     {"timings": {"pretrain_s": ...}}: what `imgunlearn demo --original CACHE/<key>/original` reads

With `retain_only=True` the entry holds the retrain reference instead (same layout; `pretrain_s` is its training
time): the same model and recipe trained from scratch on the retain set only
(`imgunlearn.demo.retrain_on_retain_set`), for `imgunlearn demo --retrain CACHE/<key>/original`.
    key.json      what was hashed, for a person to read

An entry is built in a temporary sibling directory and renamed into place when complete, so a killed run leaves
no half entry, and two runs that build the same entry at once keep the first one finished.

    from original_cache import cached_original     # scripts/ is on sys.path when a script there runs
    directory = cached_original("runs/original_cache", "unet_small", data_args, steps=1800)

Filling the cache ahead of a benchmark (e.g. the retrain reference in one process while the original trains in
another): `python scripts/original_cache.py --model vqgan_small_f2 --steps 4000 --retain-only`.
"""

from __future__ import annotations

import argparse
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
from imgunlearn.demo import TASK_ARGS, retrain_on_retain_set
from imgunlearn.io import write_json
from imgunlearn.models import create_model


def demo_data_args(size: int, batch: int, seed: int) -> dict[str, Any]:
    """The demo's data settings (`imgunlearn.demo`): what the cached original was trained on."""
    return {"source": "synthetic", "size": size, "num_forget": 200, "num_retain": 800, "num_holdout_forget": 100,
            "num_holdout_retain": 100, "task": "restore", "task_args": dict(TASK_ARGS), "batch_size": batch,
            "seed": seed}


def original_key(model_config: dict[str, Any], data_args: dict[str, Any], recipe: dict[str, Any]) -> tuple[str, dict]:
    """The cache key (hex sha256) and the dict it hashes."""
    contents = {"model": model_config, "data": data_args, "recipe": recipe,
                "versions": {"imgunlearn": imgunlearn.__version__, "torch": torch.__version__}}
    canonical = json.dumps(contents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest(), contents


def cached_original(cache: str | Path, model: str, data_args: dict[str, Any], steps: int, lr: float = 2e-3,
                    warmup_steps: int = 20, seed: int = 0, accelerator: str = "cpu", progress: bool = True,
                    model_kwargs: dict[str, Any] | None = None, retain_only: bool = False) -> Path:
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
        retain_only: Train on the retain set only (the retrain reference; enters the key).

    Returns:
        The entry's directory; the model is in its `original/` folder.
    """
    recipe = {"steps": steps, "lr": lr, "warmup_steps": warmup_steps, "seed": seed, "trainer": "imgunlearn.pretrain"}
    if retain_only:  # only then, so the keys of existing originals stay what they were
        if (lr, warmup_steps) != (2e-3, 20):
            raise ValueError(f"the retrain reference uses the pretraining defaults (lr 2e-3, warmup 20), got lr {lr} "
                             f"and warmup {warmup_steps}")
        recipe["retain_only"] = True
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
        if retain_only:
            trained = retrain_on_retain_set(create_model(model, **model_kwargs).config, data, steps, seed, accelerator,
                                            progress)
        else:
            trained = pretrain(create_model(model, **model_kwargs), data, max_steps=steps, lr=lr,
                               warmup_steps=warmup_steps, accelerator=accelerator, progress=progress)
        seconds = time.perf_counter() - start
        save(trained, work / "original", data.task)
        write_json(work / "demo.json", {"timings": {"pretrain_s": seconds}, "pretrain_steps": steps, "model": model,
                                         "retain_only": retain_only})
        write_json(work / "key.json", {"key": key, **contents}, sort_keys=True)
        try:
            os.replace(work, entry)
        except OSError:  # another run finished the same entry first: keep it
            if not (entry / "original" / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train and cache an original (or its retrain reference) on the "
                                                 "demo's data, unless the cache holds it already.")
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--steps", type=int, required=True, help="pretraining steps")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-kwargs", type=json.loads, default={}, help="JSON overrides of the preset")
    parser.add_argument("--retain-only", action="store_true", help="the retrain reference instead of the original")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--cache", default="runs/original_cache")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    entry = cached_original(args.cache, args.model, demo_data_args(args.size, args.batch, args.seed), args.steps,
                            seed=args.seed, progress=args.progress, model_kwargs=args.model_kwargs,
                            retain_only=args.retain_only)
    print(entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
