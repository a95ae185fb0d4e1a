"""`imgunlearn challenge run` and `imgunlearn challenge score`, and the original-model directory they read.

    imgunlearn challenge run --method NAME|module:function --n-models N --original DIR --out DIR
                             [--cache DIR] [--shard i/n | --jobs K] [--method-kwargs JSON] [--name NAME]
    imgunlearn challenge run --method retrain --n-models N --original DIR --out DIR   # the reference pool
    imgunlearn challenge score --pool DIR [--method NAME ...] [--n-models N]

The original directory is the output of `imgunlearn challenge train-original` (`model/`, `splits.json`,
`config.json`); the retrained models repeat its training recipe on the retain set. The embedded setting
(`EMBEDDED`, trained by `prepare_original`) is sized so that a pool of 32 retrained and 32 unlearned
`cnn_small` models finishes in well under 20 minutes on a 2-core laptop while the original keeps a clear
forget-set advantage over the retrained models.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imgunlearn.challenge.pool import (
    RETRAIN_METHOD,
    PoolData,
    RetrainFn,
    parse_shard,
    pool_methods,
    run_pool,
    score_pool,
)


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

    def train(self, train: Dataset, val: Dataset | None, num_classes: int, seed: int) -> nn.Module:
        """A freshly initialised classifier trained on `train`; depends on `seed` only."""
        from imgunlearn.challenge.models import create_classifier
        from imgunlearn.challenge.training import train_classifier

        model = create_classifier(self.model, num_classes=num_classes, seed=seed, **self.model_kwargs)
        loader = DataLoader(train, batch_size=self.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        val_loader = DataLoader(val, batch_size=256) if self.keep_best and val is not None else None
        train_classifier(model, loader, val_loader, epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                         class_weights="balanced" if self.class_weighted else None, keep_best=self.keep_best,
                         seed=seed)
        return model

    def retrainer(self, data: PoolData, num_classes: int) -> RetrainFn:
        """`retrain(seed)`: train from scratch on the retain set only, validating on the val set."""
        return lambda seed: self.train(data.retain, data.val, num_classes, seed)


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

    imgunlearn challenge train-original --synthetic --num-people 200 --image-size 16 --forget-people 10 \\
        --model cnn_small --epochs 20 --lr 3e-3 --out ORIGINAL_DIR
"""


def prepare_original(directory: str | Path, options: Mapping[str, Any] = EMBEDDED, seed: int = 0) -> Path:
    """Train an original on synthetic faces with `imgunlearn challenge train-original` and return its directory.

    Args:
        directory: Output directory of train-original.
        options: train-original options (underscores for dashes), e.g. `EMBEDDED`.
        seed: Seed of the original's initial weights and batch order.
    """
    from imgunlearn.challenge.commands import train_original_main

    argv = ["--synthetic", "--out", str(directory), "--seed", str(seed)]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, (list, tuple)) else [value])]
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
    """Read a `train-original` output directory: `model/`, `splits.json` and `config.json`.

    The retrained models repeat the original's recipe from `config.json` (model, epochs, lr, weight decay,
    batch size; class-weighted loss and best-validation checkpoint, as train-original trains).
    """
    from imgunlearn.challenge.commands import load_data
    from imgunlearn.challenge.data import read_splits
    from imgunlearn.challenge.models import load_classifier

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"not a train-original directory: {config_path} is missing")
    config = json.loads(config_path.read_text())
    missing = [key for key in ("data", "model", "epochs", "lr", "weight_decay", "batch_size") if key not in config]
    if missing:
        raise ValueError(f"{config_path} lacks {', '.join(missing)}: it was not written by train-original")
    dataset = load_data(config["data"])
    splits = read_splits(directory, dataset)
    data = PoolData(*(splits.subset(name) for name in ("retain", "forget", "val", "test")), batch_size=batch_size)
    recipe = Recipe(model=config["model"], epochs=config["epochs"], lr=config["lr"],
                    weight_decay=config["weight_decay"], batch_size=config["batch_size"])
    return Original(load_classifier(directory / "model"), data, recipe, dataset.num_groups)


# ---- commands ----------------------------------------------------------------------------------------------


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgunlearn challenge run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", required=True,
                        help="registered method name, module:function, path/to/file.py:function, or 'retrain' "
                             "(the independent retrained reference pool alone)")
    parser.add_argument("--n-models", type=int, default=32, help="pool size N (default 32)")
    parser.add_argument("--original", required=True, help="output directory of `imgunlearn challenge train-original`")
    parser.add_argument("--out", required=True, help="pool directory, shared by every method of this original")
    parser.add_argument("--cache", default=None, help="shared retrained-pool cache (default: OUT/cache)")
    parser.add_argument("--shard", default=None, help="i/n: run only members with index %% n == i")
    parser.add_argument("--jobs", type=int, default=1, help="run this many shards as parallel processes")
    parser.add_argument("--method-kwargs", default=None, help="JSON hyperparameters of a registered method")
    parser.add_argument("--name", default=None, help="name the results are filed under (default: the method)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of every member's seed")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of the unlearning loaders")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--progress-position", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _spawn_shards(argv: list[str], jobs: int, threads: int | None) -> int:
    """Run `jobs` shards of the same command as child processes and wait for all of them."""
    per_job = str(threads or max(1, (os.cpu_count() or 1) // jobs))
    children = []
    for index in range(jobs):
        command = [sys.executable, "-m", "imgunlearn.cli", "challenge", "run", *argv, "--shard", f"{index}/{jobs}",
                   "--threads", per_job, "--progress-position", str(index)]
        children.append(subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": per_job}))
    codes = [child.wait() for child in children]
    failed = [f"{i}/{jobs} (exit {code})" for i, code in enumerate(codes) if code]
    if failed:
        print(f"imgunlearn challenge run: shards failed: {', '.join(failed)}; rerun to resume", file=sys.stderr)
        return 1
    return 0


def _strip_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(name + "=") for name in names):
            kept.append(arg)
    return kept


def _report_errors(command: str, main: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run `main`, turning bad input (ValueError, FileNotFoundError) into one error line and exit code 2."""
    try:
        return main(list(sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError) as error:
        print(f"imgunlearn challenge {command}: error: {error}", file=sys.stderr)
        return 2


def run_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge run`: make (a shard of) a pool; finished members are skipped, so reruns resume."""
    return _report_errors("run", _run, argv)


def score_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge score`: score methods of a pool, write score.json files and report.md."""
    return _report_errors("score", _score, argv)


def _run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1:
        if args.shard is not None:
            raise ValueError("--jobs runs every shard itself; do not combine it with --shard")
        return _spawn_shards(_strip_options(argv, ("--jobs", "--threads")), args.jobs, args.threads)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shard = parse_shard(args.shard) if args.shard is not None else (0, 1)
    original = load_original(args.original, batch_size=args.batch_size)
    method: Any = args.method
    kwargs = json.loads(args.method_kwargs) if args.method_kwargs else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"--method-kwargs must be a JSON object, got {args.method_kwargs!r}")
    name = args.name
    if method != RETRAIN_METHOD:
        from imgunlearn.challenge.methods import resolve_unlearning

        method = resolve_unlearning(args.method, **kwargs)
        name = name or (args.method if not kwargs else f"{args.method}{json.dumps(kwargs, sort_keys=True)}")
    elif kwargs or name:
        raise ValueError("--method retrain builds the reference pool with the original's recipe: it takes no "
                         "--method-kwargs or --name")
    summary = run_pool(
        args.out, original.data, original.model, original.recipe.retrainer(original.data, original.num_classes),
        asdict(original.recipe), method, args.n_models, method_name=name, cache_dir=args.cache, shard=shard,
        base_seed=args.seed, device=args.device, progress=not args.no_progress,
        progress_position=args.progress_position,
    )
    made = ", ".join(f"{kind} {summary.made[kind]} made / {summary.skipped[kind]} done before" for kind in summary.made)
    print(f"shard {shard[0]}/{shard[1]}: {made}")
    return 0


def _score(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="imgunlearn challenge score",
                                     description="Score the methods of a pool directory against its retrained pool.")
    parser.add_argument("--pool", required=True, help="pool directory written by `imgunlearn challenge run`")
    parser.add_argument("--method", action="append", default=None,
                        help="method to score (repeatable; default: every method run in the pool)")
    parser.add_argument("--n-models", type=int, default=None, help="score the first N members (default: all run)")
    args = parser.parse_args(argv)
    if args.method:
        known = pool_methods(args.pool)
        for name in args.method:
            if name not in known and name != "original":
                raise ValueError(f"method {name!r} was not run in {args.pool}; methods there: "
                                 f"{', '.join(known) or 'none'}")
    scores = score_pool(args.pool, args.method, args.n_models)
    from imgunlearn.challenge.report import score_table

    print(score_table(scores))
    print(f"wrote {Path(args.pool) / 'score.json'} and {Path(args.pool) / 'report.md'}")
    return 0
