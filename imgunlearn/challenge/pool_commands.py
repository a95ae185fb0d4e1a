"""`imgunlearn challenge run` and `imgunlearn challenge score`, and the original-model directory they read.

    imgunlearn challenge run --method NAME|module:function --n_models N --original DIR --out DIR
                             [--cache DIR] [--shard i/n|auto | --jobs K] [--device cuda] [--hyperparameters JSON] [--set K=V]
    imgunlearn challenge run --method retrain --n_models N --original DIR --out DIR   # the reference pool
    imgunlearn challenge score --pool DIR [--method NAME ...] [--n_models N]

The original directory is a complete `imgunlearn challenge train-original` run (`model/`, `splits.json`,
`config.json`, `run.json`); the retrained models repeat its training recipe on the retain set. Every model,
batch and timing is on `--device` (default: the best available); `--jobs K` runs K shards as processes (on
`cuda:0 .. cuda:K-1` with `--device cuda`); `--shard auto` takes the shard from torchrun or SLURM. A pool
directory is resumable in place: rerunning continues where it stopped when the configuration matches, and
`--overwrite` replaces only what was made from another configuration (see `imgunlearn.challenge.pool.runner`);
the retrained cache is cleared only with `--overwrite_cache`.

The embedded setting (`EMBEDDED`, trained by `prepare_original`) is sized so that a pool of 32 retrained and
32 unlearned `cnn_small` models finishes in well under 20 minutes on a 2-core laptop while the original keeps a
clear forget-set advantage over the retrained models.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser, Namespace
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imgunlearn.challenge.pool import (
    POOL_MANIFEST,
    RETRAIN_METHOD,
    PoolData,
    RetrainFn,
    job_devices,
    local_device,
    pool_methods,
    resolve_shard,
    run_pool,
    score_pool,
)
from imgunlearn.command import (
    add_device_option,
    add_option,
    add_output_options,
    command_parser,
    resolve_device,
    run_command,
)
from imgunlearn.io import atomic_write_text
from imgunlearn.runs import check_not_input, read_run


@dataclass
class Recipe:
    """How the original and every retrained model are trained (`train_classifier` with these arguments).

    Args:
        model: A registered classifier (`cnn_small`, `cnn_tiny`, `resnet18`).
        model_kwargs: Extra factory arguments (e.g. `channels`).
        epochs: Training epochs (also the cosine period).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: Training batch size.
        class_weighted: Class-weighted cross-entropy (`1 / count` per age group).
        keep_best: Keep the best-validation checkpoint.
    """

    model: str = "cnn_small"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 5e-3
    batch_size: int = 64
    class_weighted: bool = True
    keep_best: bool = True

    def train(self, train: Dataset, val: Dataset | None, num_classes: int, seed: int,
              device: str | torch.device = "cpu") -> nn.Module:
        """A freshly initialised classifier trained on `train` on `device`; depends on `seed` only."""
        from imgunlearn.challenge.models import create_classifier
        from imgunlearn.challenge.training import train_classifier

        model = create_classifier(self.model, num_classes=num_classes, seed=seed, **self.model_kwargs).to(device)
        loader = DataLoader(train, batch_size=self.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        val_loader = DataLoader(val, batch_size=256) if self.keep_best and val is not None else None
        train_classifier(model, loader, val_loader, epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                         class_weights="balanced" if self.class_weighted else None, keep_best=self.keep_best,
                         seed=seed)
        return model

    def retrainer(self, data: PoolData, num_classes: int, device: str | torch.device = "cpu") -> RetrainFn:
        """`retrain(seed)`: train from scratch on the retain set only, validating on the val set, on `device`."""
        return lambda seed: self.train(data.retain, data.val, num_classes, seed, device)


EMBEDDED: dict[str, Any] = {
    "num_people": 200, "images_per_person": [3, 30], "image_size": 16, "synthetic_seed": 0,
    "forget_people": 10, "split_seed": 0,
    "model": "cnn_small", "epochs": 20, "lr": 3e-3, "weight_decay": 5e-3, "batch_size": 64,
}
"""The embedded laptop setting, as `imgunlearn challenge train-original --synthetic` options: 2,448 synthetic
16×16 faces of 200 people, 10 of them forgotten (107 images), `cnn_small` trained for 20 epochs: about 7
CPU-seconds per retrained model, so 32 retrained + 32 unlearned models take about 5 minutes of one core. The
original classifies the forget set far better than retrained models do (92% against about 24%) at the same
test accuracy (about 86%). The same from the command line:

    imgunlearn challenge train-original --synthetic --num_people 200 --image_size 16 --forget_people 10 \\
        --model cnn_small --epochs 20 --lr 3e-3 --out ORIGINAL_DIR
"""


def prepare_original(directory: str | Path, options: Mapping[str, Any] = EMBEDDED, seed: int = 0,
                     device: str = "cpu") -> Path:
    """Train an original on synthetic faces with `imgunlearn challenge train-original` and return its directory.

    Args:
        directory: Output directory of train-original (new, or holding an earlier run: it is replaced).
        options: train-original options (underscore names), e.g. `EMBEDDED`.
        seed: Seed of the original's initial weights and batch order.
        device: Where to train.
    """
    from imgunlearn.challenge.commands import train_original_main

    argv = ["--synthetic", "--out", str(directory), "--seed", str(seed), "--device", device, "--overwrite"]
    argv += [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in options.items()]
    if train_original_main(argv) != 0:
        raise RuntimeError(f"train-original failed with options {dict(options)}")
    return Path(directory)


@dataclass
class Original:
    """An original directory, loaded: the model, the pool's data, the recipe and the number of classes."""

    model: nn.Module
    data: PoolData
    recipe: Recipe
    num_classes: int


def load_original(directory: str | Path, batch_size: int = 64) -> Original:
    """Read a complete `train-original` output directory: `model/`, `splits.json`, `config.json`, `run.json`.

    The retrained models repeat the original's recipe from `config.json` (model, epochs, lr, weight decay,
    batch size; class-weighted loss and best-validation checkpoint, as train-original trains).
    """
    from imgunlearn.challenge.commands import load_data, read_original
    from imgunlearn.challenge.data import read_splits
    from imgunlearn.challenge.models import load_classifier

    directory = Path(directory)
    config, _ = read_original(directory)
    dataset = load_data(config["data"])
    splits = read_splits(directory, dataset)
    data = PoolData(*(splits.subset(name) for name in ("retain", "forget", "val", "test")), batch_size=batch_size)
    recipe = Recipe(model=config["model"], epochs=config["epochs"], lr=config["lr"],
                    weight_decay=config["weight_decay"], batch_size=config["batch_size"])
    return Original(load_classifier(directory / "model"), data, recipe, dataset.num_groups)


# ---- commands ----------------------------------------------------------------------------------------------


def run_parser() -> ArgumentParser:
    from imgunlearn.challenge.commands import add_hyperparameter_options

    p = command_parser("imgunlearn challenge run", "Make (a shard of) a pool of unlearned and retrained models.")
    add_option(p, "method", type=str, required=True,
               help="registered method name, module:function, path/to/file.py:function, or 'retrain' "
                    "(the independent retrained reference pool alone)")
    add_hyperparameter_options(p)
    add_option(p, "name", type=str | None, default=None, help="name the results are filed under (default: the method)")
    add_option(p, "n_models", type=int, default=32, help="pool size N")
    add_option(p, "original", type=str, required=True, help="output directory of `imgunlearn challenge train-original`")
    add_output_options(p, help="pool directory, shared by every method of this original")
    add_option(p, "overwrite_cache", action="store_true",
               help="retrain this pool's retrained models from scratch (removes its cache entry first)")
    add_option(p, "cache", type=str | None, default=None, help="shared retrained-pool cache (default: OUT/cache)")
    add_option(p, "shard", type=str | None, default=None,
               help="i/n: run only members with index %% n == i; auto: from torchrun (RANK/WORLD_SIZE) or SLURM")
    add_option(p, "jobs", type=int, default=1, help="run this many shards as parallel processes")
    add_option(p, "seed", type=int, default=0, help="base seed of every member's seed")
    add_option(p, "batch_size", type=int, default=64, help="batch size of the unlearning loaders")
    add_device_option(p)
    add_option(p, "threads", type=int | None, default=None, help="torch CPU threads per process")
    add_option(p, "no_progress", action="store_true", help="no progress bar")
    add_option(p, "progress_position", type=int, default=0, help=argparse.SUPPRESS)
    return p


def run_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge run`: make (a shard of) a pool; finished members are skipped, so reruns resume."""
    parser = run_parser()
    return run_command("challenge run", parser, argv, lambda cfg: _run(parser, cfg))


def _check_out(cfg: Namespace) -> None:
    out = Path(cfg.out)
    check_not_input(out, [cfg.original])
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / POOL_MANIFEST).is_file():
        record = read_run(out)
        what = (f"a run of `imgunlearn {record.get('command', '?')}`" if record else "files that are not a pool")
        raise ValueError(f"--out {out} holds {what}; a pool needs a new or empty directory, or an earlier pool")


def _spawn_shards(parser: ArgumentParser, cfg: Namespace, device: str) -> int:
    """Run `cfg.jobs` shards of the same configuration as child processes and wait for all of them."""
    jobs = cfg.jobs
    per_job = cfg.threads or max(1, (os.cpu_count() or 1) // jobs)
    devices = job_devices(device, jobs, torch.cuda.device_count() if device == "cuda" else 0)
    child = cfg.clone()
    child.jobs, child.shard, child.overwrite, child.overwrite_cache, child.threads = 1, None, False, False, per_job
    child.config = None
    config_path = Path(cfg.out) / f".run-config-{secrets.token_hex(4)}.yaml"
    atomic_write_text(config_path, parser.dump(child, skip_none=False, skip_check=True))
    children = []
    try:
        for index in range(jobs):
            command = [sys.executable, "-m", "imgunlearn.cli", "challenge", "run", "--config", str(config_path),
                       "--shard", f"{index}/{jobs}", "--device", devices[index], "--progress_position", str(index)]
            children.append(subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(per_job)}))
        codes = [process.wait() for process in children]
    finally:
        for process in children:
            if process.poll() is None:
                process.kill()
        config_path.unlink(missing_ok=True)
    failed = [f"{i}/{jobs} (exit {code})" for i, code in enumerate(codes) if code]
    if failed:
        print(f"imgunlearn challenge run: shards failed: {', '.join(failed)}; rerun to resume", file=sys.stderr)
        return 1
    return 0


def _run(parser: ArgumentParser, cfg: Namespace) -> int:
    if cfg.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {cfg.jobs}")
    if cfg.n_models < 1:
        raise ValueError(f"--n_models must be >= 1, got {cfg.n_models}")
    if cfg.jobs > 1 and cfg.shard is not None:
        raise ValueError("--jobs runs every shard itself; do not combine it with --shard")
    shard = resolve_shard(cfg.shard)
    device = resolve_device(cfg.device)
    if cfg.shard is not None and cfg.shard.strip() == "auto":
        device = local_device(device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    _check_out(cfg)
    method: Any = cfg.method
    from imgunlearn.challenge.commands import hyperparameters_of

    kwargs = hyperparameters_of(cfg)
    cfg.hyperparameters, cfg.set = kwargs, []  # saved resolved
    name = cfg.name
    if method != RETRAIN_METHOD:
        from imgunlearn.challenge.methods import resolve_unlearning

        method = resolve_unlearning(cfg.method, **kwargs)
        name = name or (cfg.method if not kwargs else f"{cfg.method}{json.dumps(kwargs, sort_keys=True)}")
    elif kwargs or name:
        raise ValueError("--method retrain builds the reference pool with the original's recipe: it takes no "
                         "--hyperparameters, --set or --name")
    original = load_original(cfg.original, batch_size=cfg.batch_size)
    common = dict(method_name=name, cache_dir=cfg.cache, base_seed=cfg.seed, device=device)
    retrain = original.recipe.retrainer(original.data, original.num_classes, device)
    if cfg.jobs > 1:  # check the configuration, clear what --overwrite replaces, evaluate the original: once
        run_pool(cfg.out, original.data, original.model, retrain, asdict(original.recipe), method, cfg.n_models,
                 overwrite=cfg.overwrite, overwrite_cache=cfg.overwrite_cache, make_members=False, **common)
        return _spawn_shards(parser, cfg, device)
    summary = run_pool(
        cfg.out, original.data, original.model, retrain, asdict(original.recipe), method, cfg.n_models,
        shard=shard, overwrite=cfg.overwrite, overwrite_cache=cfg.overwrite_cache, progress=not cfg.no_progress,
        progress_position=cfg.progress_position, **common,
    )
    made = ", ".join(f"{kind} {summary.made[kind]} made / {summary.skipped[kind]} done before" for kind in summary.made)
    print(f"shard {shard[0]}/{shard[1]} on {device}: {made}")
    return 0


def score_parser() -> ArgumentParser:
    p = command_parser("imgunlearn challenge score", "Score the methods of a pool directory against its retrained pool.")
    add_option(p, "pool", type=str, required=True, help="pool directory written by `imgunlearn challenge run`")
    add_option(p, "method", type=str, action="append", default=None,
               help="method to score (repeatable; default: every method run in the pool)")
    add_option(p, "n_models", type=int | None, default=None, help="score the first N members (default: all run)")
    return p


def score_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge score`: score methods of a pool, write score.json files and report.md."""
    return run_command("challenge score", score_parser(), argv, _score)


def _score(cfg: Namespace) -> int:
    if cfg.method:
        known = pool_methods(cfg.pool)
        for name in cfg.method:
            if name not in known and name != "original":
                raise ValueError(f"method {name!r} was not run in {cfg.pool}; methods there: "
                                 f"{', '.join(known) or 'none'}")
    scores = score_pool(cfg.pool, cfg.method, cfg.n_models)
    from imgunlearn.challenge.report import score_table

    print(score_table(scores))
    print(f"wrote {Path(cfg.pool) / 'score.json'} and {Path(cfg.pool) / 'report.md'}")
    return 0
