"""`imgunlearn challenge train-original`, `imgunlearn challenge unlearn` and `imgunlearn challenge methods`.

    imgunlearn challenge train-original (--data PATH | --synthetic) [--model cnn_small] [--epochs N] --out DIR
    imgunlearn challenge unlearn --method NAME|module:function --original DIR --out DIR [--seed S]
    imgunlearn challenge methods

`train-original` writes `DIR/model/` (config.json + model.safetensors), `DIR/splits.json` and `DIR/splits.csv`,
`DIR/metrics.json` (accuracies per split, the two MIA figures, training time, per-epoch history),
`DIR/config.json` (the resolved options, including how to rebuild the data), `DIR/config.yaml` (the command's
configuration) and `DIR/run.json` (written last: the run is complete). `unlearn` reads such a directory, runs
the method on the original with the challenge's loaders and writes `OUT/model/`, `OUT/metrics.json` (retain /
forget / val / test accuracy, MIA figures, time, time as a share of retraining), `OUT/config.json`,
`OUT/config.yaml` and `OUT/run.json`. Both follow `imgunlearn.runs`: results are assembled in a temporary
sibling and moved into place on success, an existing run is refused unless `--overwrite`, and `unlearn --out`
may not equal or contain `--original`. Both take `--config FILE.yaml` (repeatable; see `configs/challenge/`),
`--print_config`, and run on `--device` (default: the best available).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser, Namespace

from imgunlearn.challenge.data import FaceAgeDataset, FaceSplits, make_loaders, read_splits, split_faces
from imgunlearn.challenge.mia import mia_figures
from imgunlearn.challenge.models import create_classifier, load_classifier, save_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import (
    accuracy,
    check_same_architecture,
    seeded,
    synchronize,
    train_classifier,
)
from imgunlearn.command import (
    add_device_option,
    add_option,
    add_output_options,
    command_parser,
    config_dict,
    resolve_device,
    run_command,
    save_config,
)
from imgunlearn.io import write_json
from imgunlearn.runs import is_complete, open_run

CSV_NAME = "faces.csv"


def load_data(spec: dict[str, Any]) -> FaceAgeDataset:
    """Rebuild the dataset a `config.json` `data` entry describes (synthetic or CSV)."""
    if spec["kind"] == "synthetic":
        faces = generate_faces(spec["num_people"], tuple(spec["images_per_person"]), spec["size"], spec["seed"])
        return FaceAgeDataset.from_faces(faces, num_groups=spec["num_groups"])
    return FaceAgeDataset.from_csv(spec["csv"], spec["image_root"], spec["size"], spec["num_groups"])


def _data_spec(cfg: Namespace) -> dict[str, Any]:
    common = {"size": cfg.image_size, "num_groups": cfg.num_groups}
    if cfg.synthetic:
        if len(cfg.images_per_person) != 2:
            raise ValueError(f"--images_per_person takes [MIN, MAX], got {cfg.images_per_person}")
        return {"kind": "synthetic", "num_people": cfg.num_people, "seed": cfg.synthetic_seed,
                "images_per_person": list(cfg.images_per_person), **common}
    path = Path(cfg.data)
    csv_path = path / CSV_NAME if path.is_dir() else path
    if not csv_path.is_file():
        raise FileNotFoundError(f"no face CSV at {csv_path} (give the CSV file or a folder holding {CSV_NAME})")
    root = Path(cfg.image_root) if cfg.image_root else csv_path.parent
    return {"kind": "csv", "csv": str(csv_path.resolve()), "image_root": str(root.resolve()), **common}


def _evaluate(model: torch.nn.Module, loaders: dict[str, Any], seed: int) -> dict[str, float]:
    record = {f"{name}_acc": accuracy(model, loaders[name]) for name in ("retain", "forget", "val", "test")}
    record.update(mia_figures(model, loaders["retain"], loaders["forget"], loaders["test"], seed=seed))
    return record


def train_original_parser() -> ArgumentParser:
    p = command_parser("imgunlearn challenge train-original",
                       "Train the original age-group classifier and write its splits.")
    add_option(p, "data", type=str | None, default=None,
               help=f"a face CSV (image_id or path, age, [age_group], person_id) or a folder with {CSV_NAME}")
    add_option(p, "synthetic", action="store_true", help="use the embedded synthetic faces")
    add_option(p, "image_root", type=str | None, default=None,
               help="folder the CSV's image paths are relative to (default: the CSV's)")
    add_option(p, "num_people", type=int, default=300, help="synthetic: number of people")
    add_option(p, "images_per_person", type=list[int], default=[3, 30], help="synthetic: [MIN, MAX] per person")
    add_option(p, "synthetic_seed", type=int, default=0)
    add_option(p, "image_size", type=int, default=32)
    add_option(p, "num_groups", type=int, default=10)
    add_option(p, "forget_people", type=int, default=15)
    add_option(p, "split_seed", type=int, default=0)
    add_option(p, "model", type=str, default="cnn_small", help="a registered classifier (cnn_tiny, cnn_small, resnet18)")
    add_option(p, "epochs", type=int, default=30)
    add_option(p, "lr", type=float, default=1e-4)
    add_option(p, "weight_decay", type=float, default=5e-3)
    add_option(p, "batch_size", type=int, default=64)
    add_option(p, "seed", type=int, default=0, help="seeds the initial weights and the batch order")
    add_device_option(p)
    add_output_options(p)
    return p


def train_original_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge train-original`."""
    parser = train_original_parser()
    return run_command("challenge train-original", parser, argv, lambda cfg: _train_original(parser, cfg))


def _train_original(parser: ArgumentParser, cfg: Namespace) -> int:
    if bool(cfg.data) == bool(cfg.synthetic):
        raise ValueError("give exactly one of --data PATH and --synthetic")
    device = resolve_device(cfg.device)
    spec = _data_spec(cfg)
    dataset = load_data(spec)
    splits = split_faces(dataset, cfg.forget_people, seed=cfg.split_seed)
    model = create_classifier(cfg.model, num_classes=dataset.num_groups, seed=cfg.seed).to(device)
    inputs = [spec.get("image_root"), str(Path(spec["csv"]).parent)] if spec["kind"] == "csv" else []
    config = config_dict(parser, cfg)
    with open_run(cfg.out, command="challenge train-original", config=config, overwrite=cfg.overwrite,
                  inputs=inputs) as run:
        splits.write_splits(run.work)
        loaders = make_loaders(splits, cfg.batch_size, seed=cfg.seed)
        synchronize(device)
        start = time.perf_counter()
        model, history = train_classifier(model, loaders["train"], loaders["val"], epochs=cfg.epochs, lr=cfg.lr,
                                          weight_decay=cfg.weight_decay, seed=cfg.seed, progress=True)
        synchronize(device)
        seconds = time.perf_counter() - start
        save_classifier(model, run.work / "model")
        metrics = {"train_acc": accuracy(model, loaders["train"]), **_evaluate(model, loaders, cfg.seed),
                   "train_seconds": seconds, "device": device, "sizes": {k: len(v) for k, v in splits.indices.items()},
                   "history": history}
        write_json(run.work / "metrics.json", metrics)
        kept = {k: v for k, v in config.items() if k not in ("data", "synthetic", "image_root", "overwrite")}
        write_json(run.work / "config.json", {**kept, "data": spec})
        save_config(parser, cfg, run.work)
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return 0


def unlearn_parser() -> ArgumentParser:
    p = command_parser("imgunlearn challenge unlearn", "Unlearn the forget set of a train-original run with one method.")
    add_option(p, "method", type=str, required=True,
               help="a registered method (imgunlearn challenge methods) or module:function / file.py:function")
    add_hyperparameter_options(p)
    add_option(p, "original", type=str, required=True, help="output folder of train-original")
    add_option(p, "seed", type=int, default=0)
    add_option(p, "batch_size", type=int, default=64)
    add_option(p, "retrain_seconds", type=float | None, default=None,
               help="retraining time for the time share (default: the original's training time)")
    add_device_option(p)
    add_output_options(p)
    return p


def add_hyperparameter_options(parser: ArgumentParser) -> None:
    """`--hyperparameters` (a mapping, usually from `--config`; `--method_kwargs` is an older spelling) and
    `--set KEY=VALUE`: how `unlearn` and `run` both take a registered method's settings."""
    parser.add_argument("--hyperparameters", "--method_kwargs", "--method-kwargs", dest="hyperparameters",
                        type=dict[str, Any], default={},
                        help="hyperparameters of a registered method (a mapping; usually from --config)")
    add_option(parser, "set", type=str, action="append", default=[],
               help="KEY=VALUE: one hyperparameter of a registered method (YAML value), repeatable")


def hyperparameters_of(cfg: Namespace) -> dict[str, Any]:
    """`--hyperparameters` with every `--set KEY=VALUE` applied on top."""
    values = dict(cfg.hyperparameters or {})
    for item in cfg.get("set") or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        values[key] = yaml.safe_load(value)
    return values


def read_original(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(config, metrics)` of a complete train-original directory; a clear error for anything else."""
    directory = Path(directory)
    for name in ("config.json", "metrics.json", "splits.json"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a train-original output: {name} is missing")
    if not is_complete(directory):
        raise ValueError(f"{directory} is not a complete train-original run (its run.json is missing or does not "
                         "say complete): train it again with `imgunlearn challenge train-original`")
    config = json.loads((directory / "config.json").read_text())
    missing = [key for key in ("data", "model", "epochs", "lr", "weight_decay", "batch_size") if key not in config]
    if missing:
        raise ValueError(f"{directory / 'config.json'} lacks {', '.join(missing)}: it was not written by "
                         "train-original")
    return config, json.loads((directory / "metrics.json").read_text())


def unlearn_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge unlearn`."""
    parser = unlearn_parser()
    return run_command("challenge unlearn", parser, argv, lambda cfg: _unlearn(parser, cfg))


def _unlearn(parser: ArgumentParser, cfg: Namespace) -> int:
    from imgunlearn.challenge.methods import resolve_unlearning

    device = resolve_device(cfg.device)
    hyperparameters = hyperparameters_of(cfg)
    cfg.hyperparameters = hyperparameters  # saved resolved: --set folded into hyperparameters
    del cfg.set
    registered = ":" not in cfg.method
    method = resolve_unlearning(cfg.method, **{**({"seed": cfg.seed} if registered else {}), **hyperparameters})
    original_dir = Path(cfg.original)
    config, original_metrics = read_original(original_dir)
    splits: FaceSplits = read_splits(original_dir, load_data(config["data"]))
    reference = load_classifier(original_dir / "model")
    net = copy.deepcopy(reference).to(device).train()
    with open_run(cfg.out, command="challenge unlearn", config=config_dict(parser, cfg), overwrite=cfg.overwrite,
                  inputs=[original_dir]) as run:
        loaders = make_loaders(splits, cfg.batch_size, seed=cfg.seed)
        synchronize(device)
        start = time.perf_counter()
        with seeded(cfg.seed, loaders["retain"], loaders["forget"], loaders["val"]):
            returned = method(net, loaders["retain"], loaders["forget"], loaders["val"])
        synchronize(device)
        seconds = time.perf_counter() - start
        result = returned if isinstance(returned, torch.nn.Module) else net
        check_same_architecture(reference, result, f"the network returned by {cfg.method!r}")
        if not isinstance(getattr(result, "config", None), dict):
            result.config = reference.config  # a new network of the original's architecture
        save_classifier(result, run.work / "model")
        retrain_seconds = cfg.retrain_seconds or original_metrics.get("train_seconds")
        metrics = {**_evaluate(result, loaders, cfg.seed), "seconds": seconds, "device": device,
                   "retrain_seconds": retrain_seconds,
                   "time_share_of_retrain": seconds / retrain_seconds if retrain_seconds else None,
                   "original": {k: original_metrics.get(k) for k in ("retain_acc", "forget_acc", "test_acc")}}
        write_json(run.work / "metrics.json", metrics)
        write_json(run.work / "config.json", {"method": cfg.method, "hyperparameters": hyperparameters,
                                              "seed": cfg.seed, "original": str(original_dir.resolve()),
                                              "batch_size": cfg.batch_size, "device": device})
        save_config(parser, cfg, run.work)
    print(json.dumps(metrics, indent=2))
    return 0


def methods_parser() -> ArgumentParser:
    p = command_parser("imgunlearn challenge methods", "Print the registered challenge unlearning methods.")
    add_option(p, "pattern", type=str, default="*", help="fnmatch pattern (e.g. 'reset_*')")
    return p


def methods_main(argv: list[str] | None = None) -> int:
    """`imgunlearn challenge methods`: the registered methods, one per line."""

    def show(cfg: Namespace) -> int:
        from imgunlearn.challenge.methods import list_methods

        for name in list_methods(cfg.pattern):
            print(name)
        return 0

    return run_command("challenge methods", methods_parser(), argv, show)
