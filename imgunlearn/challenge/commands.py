"""`imgunlearn challenge train-original` and `imgunlearn challenge unlearn`.

    imgunlearn challenge train-original (--data PATH | --synthetic) [--model cnn_small] [--epochs N] --out DIR
    imgunlearn challenge unlearn --method NAME|module:function --original DIR --out DIR [--seed S]

`train-original` writes `DIR/model/` (config.json + model.safetensors), `DIR/splits.json` and `DIR/splits.csv`,
`DIR/metrics.json` (accuracies per split, the two MIA figures, training time, per-epoch history) and
`DIR/config.json` (the resolved options, including how to rebuild the data). `unlearn` reads such a directory,
runs the method on the original with the challenge's loaders and writes `OUT/model/`, `OUT/metrics.json`
(retain / forget / val / test accuracy, MIA figures, time, time as a share of retraining) and
`OUT/config.json`. Both take `--config FILE.yaml` (see `configs/challenge/`) whose keys are option names;
options given on the command line win.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from imgunlearn.challenge.data import FaceAgeDataset, FaceSplits, make_loaders, read_splits, split_faces
from imgunlearn.challenge.mia import mia_figures
from imgunlearn.challenge.models import create_classifier, load_classifier, save_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import accuracy, seeded, train_classifier
from imgunlearn.io import write_json

CSV_NAME = "faces.csv"


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv`, taking defaults from `--config FILE.yaml` first (its keys are option names)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            parser.error(f"config file not found: {path}")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            parser.error(f"{path} must hold a mapping of option names to values")
        dests = {a.dest for a in parser._actions} | {"hyperparameters"}
        for key in values:
            if key.replace("-", "_") not in dests:
                parser.error(f"unknown key {key!r} in {path}")
        parser.set_defaults(**{k.replace("-", "_"): v for k, v in values.items()})
    return parser.parse_args(argv)


def load_data(spec: dict[str, Any]) -> FaceAgeDataset:
    """Rebuild the dataset a `config.json` `data` entry describes (synthetic or CSV)."""
    if spec["kind"] == "synthetic":
        faces = generate_faces(spec["num_people"], tuple(spec["images_per_person"]), spec["size"], spec["seed"])
        return FaceAgeDataset.from_faces(faces, num_groups=spec["num_groups"])
    return FaceAgeDataset.from_csv(spec["csv"], spec["image_root"], spec["size"], spec["num_groups"])


def _data_spec(args: argparse.Namespace) -> dict[str, Any]:
    common = {"size": args.image_size, "num_groups": args.num_groups}
    if args.synthetic:
        return {"kind": "synthetic", "num_people": args.num_people, "seed": args.synthetic_seed,
                "images_per_person": list(args.images_per_person), **common}
    path = Path(args.data)
    csv_path = path / CSV_NAME if path.is_dir() else path
    if not csv_path.is_file():
        raise FileNotFoundError(f"no face CSV at {csv_path} (give the CSV file or a folder holding {CSV_NAME})")
    root = Path(args.image_root) if args.image_root else csv_path.parent
    return {"kind": "csv", "csv": str(csv_path.resolve()), "image_root": str(root.resolve()), **common}


def _evaluate(model: torch.nn.Module, loaders: dict[str, Any], seed: int) -> dict[str, float]:
    record = {f"{name}_acc": accuracy(model, loaders[name]) for name in ("retain", "forget", "val", "test")}
    record.update(mia_figures(model, loaders["retain"], loaders["forget"], loaders["test"], seed=seed))
    return record


def train_original_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imgunlearn challenge train-original",
                                description="Train the original age-group classifier and write its splits.")
    p.add_argument("--config", help="YAML file of option defaults (keys are option names)")
    p.add_argument("--data", help="a face CSV (image_id or path, age, [age_group], person_id) or a folder with "
                                  f"{CSV_NAME}")
    p.add_argument("--synthetic", action="store_true", help="use the embedded synthetic faces")
    p.add_argument("--image-root", help="folder the CSV's image paths are relative to (default: the CSV's)")
    p.add_argument("--num-people", type=int, default=300, help="synthetic: number of people")
    p.add_argument("--images-per-person", type=int, nargs=2, default=[3, 30], metavar=("MIN", "MAX"))
    p.add_argument("--synthetic-seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--num-groups", type=int, default=10)
    p.add_argument("--forget-people", type=int, default=15)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--model", default="cnn_small", help="a registered classifier (cnn_tiny, cnn_small, resnet18)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the batch order")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="output folder")
    return p


def train_original_main(argv: list[str] | None = None) -> int:
    parser = train_original_parser()
    args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
    if not args.out:
        parser.error("--out is required")
    if bool(args.data) == bool(args.synthetic):
        parser.error("give exactly one of --data PATH and --synthetic")
    try:
        spec = _data_spec(args)
        dataset = load_data(spec)
        splits = split_faces(dataset, args.forget_people, seed=args.split_seed)
        model = create_classifier(args.model, num_classes=dataset.num_groups, seed=args.seed).to(args.device)
    except (ValueError, FileNotFoundError) as error:
        print(f"imgunlearn challenge train-original: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits.write_splits(out)
    loaders = make_loaders(splits, args.batch_size, seed=args.seed)
    start = time.perf_counter()
    model, history = train_classifier(model, loaders["train"], loaders["val"], epochs=args.epochs, lr=args.lr,
                                      weight_decay=args.weight_decay, seed=args.seed, progress=True)
    seconds = time.perf_counter() - start
    save_classifier(model, out / "model")
    metrics = {"train_acc": accuracy(model, loaders["train"]), **_evaluate(model, loaders, args.seed),
               "train_seconds": seconds, "sizes": {k: len(v) for k, v in splits.indices.items()}, "history": history}
    write_json(out / "metrics.json", metrics)
    config = {k: v for k, v in vars(args).items() if k not in ("config", "data", "synthetic", "image_root")}
    write_json(out / "config.json", {**config, "data": spec})
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return 0


def unlearn_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imgunlearn challenge unlearn",
                                description="Unlearn the forget set of a train-original run with one method.")
    p.add_argument("--config", help="YAML file: method, hyperparameters and other option defaults")
    p.add_argument("--method", help="a registered method or module:function / file.py:function")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter of a registered method (YAML value), repeatable")
    p.add_argument("--original", help="output folder of train-original")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--retrain-seconds", type=float, help="retraining time for the time share (default: the "
                                                         "original's training time)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="output folder")
    p.set_defaults(hyperparameters={})
    return p


def _hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    values = dict(args.hyperparameters or {})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        values[key] = yaml.safe_load(value)
    return values


def _load_original(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    for name in ("config.json", "metrics.json", "splits.json"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a train-original output: {name} is missing")
    return json.loads((directory / "config.json").read_text()), json.loads((directory / "metrics.json").read_text())


def unlearn_main(argv: list[str] | None = None) -> int:
    from imgunlearn.challenge.methods import resolve_unlearning

    parser = unlearn_parser()
    args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
    for option in ("method", "original", "out"):
        if not getattr(args, option):
            parser.error(f"--{option} is required")
    original_dir = Path(args.original)
    try:
        hyperparameters = _hyperparameters(args)
        registered = ":" not in args.method
        extra = {"seed": args.seed} if registered else {}
        method = resolve_unlearning(args.method, **{**extra, **hyperparameters})
        config, original_metrics = _load_original(original_dir)
        splits: FaceSplits = read_splits(original_dir, load_data(config["data"]))
        net = load_classifier(original_dir / "model").to(args.device)
    except (ValueError, FileNotFoundError) as error:
        print(f"imgunlearn challenge unlearn: error: {error}", file=sys.stderr)
        return 2
    loaders = make_loaders(splits, args.batch_size, seed=args.seed)
    model_config = net.config
    net.train()
    start = time.perf_counter()
    with seeded(args.seed, loaders["retain"], loaders["forget"], loaders["val"]):
        net = method(net, loaders["retain"], loaders["forget"], loaders["val"])
    seconds = time.perf_counter() - start
    if not isinstance(getattr(net, "config", None), dict):
        net.config = model_config  # a user function returned a new network of the original's architecture
    out = Path(args.out)
    save_classifier(net, out / "model")
    retrain_seconds = args.retrain_seconds or original_metrics.get("train_seconds")
    metrics = {**_evaluate(net, loaders, args.seed), "seconds": seconds, "retrain_seconds": retrain_seconds,
               "time_share_of_retrain": seconds / retrain_seconds if retrain_seconds else None,
               "original": {k: original_metrics.get(k) for k in ("retain_acc", "forget_acc", "test_acc")}}
    write_json(out / "metrics.json", metrics)
    write_json(out / "config.json", {"method": args.method, "hyperparameters": hyperparameters, "seed": args.seed,
                                      "original": str(original_dir.resolve()), "batch_size": args.batch_size})
    print(json.dumps(metrics, indent=2))
    return 0
