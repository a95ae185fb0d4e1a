"""`imgunlearn demo`: the embedded end-to-end example.

A drone-survey model must forget the children's faces it saw. The demo generates the synthetic aerial survey
(forget tiles carry real face crops), trains the original restoration model from scratch, unlearns the forget
tiles with one or more methods, and evaluates original and unlearned models side by side on the training
forget tiles and on held-out tiles of both kinds. It writes into `--out`:

    original/, unlearned/         saved models (safetensors + config.json + task.json)
    methods/<name>/               every further method's model, when several are run
    metrics.json, metrics.csv/md  {"original": {SPLIT: {...}}, "unlearned": {SPLIT: {...}}, ...}
    grid.png, tradeoff.png        input / original / unlearned / ground truth; retain vs forget quality
    report.md, summary.md         the report, and one row per method run with its timings
    splits.csv, task.json, data.json, demo.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from imgunlearn.api import load_task, pretrain, save, unlearn
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.evaluation import evaluate_models
from imgunlearn.methods import METHODS
from imgunlearn.models.base import ImageToImageModel, load_model
from imgunlearn.registry import MODELS

SPLITS = ("forget_train", "forget_holdout", "retain_holdout")

TASK_ARGS = {"noise_std": 0.1, "downsample": 1}
"""The demo's restoration task: pixel noise of σ 0.1 and no blur. At 64 px a down/up-sampling blur removes
facial detail that no small model restores on unseen faces (face-box PSNR stays near the input's), so the
original would barely outperform its own input there."""

METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "noisy_label": {"lr": 3e-4, "region": "box", "forget_target": "flat", "forget_alpha": 2.0, "retain_alpha": 16.0},
    "encoder_teacher": {"lr": 1e-3, "warmup_steps": 25, "betas": (0.9, 0.95), "weight_decay": 0.05, "region": "box",
                        "forget_target": "normal"},
    "max_loss": {"lr": 3e-4, "region": "box", "forget_bound": 0.1, "retain_alpha": 8.0},
    "retain_label": {"lr": 3e-4, "region": "box", "retain_alpha": 8.0},
    "random_encoder": {"lr": 1e-3, "region": "box"},
    "finetune": {"lr": 3e-4},
}
"""Settings the demo uses per method (the methods' own defaults fill the rest)."""


def method_args(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**METHOD_DEFAULTS.get(name, {}), **(overrides or {})}


def run_demo(out: str | Path = "runs/demo", methods: tuple[str, ...] = ("noisy_label",), model: str = "unet_small",
             size: int = 64, seed: int = 0, num_forget: int = 200, num_retain: int = 800, num_holdout: int = 100,
             pretrain_steps: int = 1800, unlearn_steps: int = 300, batch_size: int = 16, original: str | None = None,
             accelerator: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns the metrics written to `out/metrics.json`."""
    for name in methods:
        METHODS.get(name)  # unknown names fail before any work
    if model not in MODELS and f"{model}_small" in MODELS:
        model = f"{model}_small"  # a family name stands for its CPU-sized variant
    MODELS.get(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    data = ForgetRetainDataModule(source="synthetic", size=size, num_forget=num_forget, num_retain=num_retain,
                                  num_holdout_forget=num_holdout, num_holdout_retain=num_holdout,
                                  task="restore", task_args=TASK_ARGS, batch_size=batch_size, seed=seed)
    data.setup("fit")
    data.write_splits(out)
    timings["data_s"] = time.perf_counter() - start

    if original is not None:
        original_model, timings["pretrain_s"] = reuse_original(Path(original), data.task)
    else:
        start = time.perf_counter()
        original_model = pretrain(model, data, max_steps=pretrain_steps, accelerator=accelerator, progress=progress)
        timings["pretrain_s"] = time.perf_counter() - start
    save(original_model, out / "original", data.task)

    unlearned: dict[str, ImageToImageModel] = {}
    for i, name in enumerate(methods):
        start = time.perf_counter()
        unlearned[name] = unlearn(original_model, data, method=name, max_steps=unlearn_steps, accelerator=accelerator,
                                  progress=progress, seed=seed, **method_args(name))
        timings[f"unlearn_{name}_s"] = time.perf_counter() - start
        save(unlearned[name], out / ("unlearned" if i == 0 else f"methods/{name}"), data.task)

    start = time.perf_counter()
    rows = {"original": original_model, "unlearned": unlearned[methods[0]]}
    rows.update({name: m for name, m in unlearned.items() if name != methods[0]})
    info = {"task": data.task.to_config(), "methods": list(methods), "model": model, "seed": seed}
    results = evaluate_models(rows, {split: data.split_dataset(split) for split in SPLITS}, output_dir=out,
                              info=info, progress=progress)
    timings["evaluate_s"] = time.perf_counter() - start

    summary = {"methods": list(methods), "model": model, "size": size, "seed": seed,
               "pretrain_steps": pretrain_steps, "unlearn_steps": unlearn_steps, "batch_size": batch_size,
               "method_args": {name: method_args(name) for name in methods}, "timings": timings}
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary_table(results, methods, timings))
    return results


def reuse_original(directory: Path, task: Any) -> tuple[ImageToImageModel, float]:
    """A saved original and its pretraining time (from the demo run that made it; NaN when unknown)."""
    saved_task = load_task(directory)
    if saved_task != task:
        raise ValueError(f"{directory} was trained for task {saved_task}, the demo uses {task}")
    record = directory.parent / "demo.json"
    seconds = json.loads(record.read_text())["timings"]["pretrain_s"] if record.is_file() else float("nan")
    return load_model(directory), float(seconds)


def summary_table(results: dict[str, Any], methods: tuple[str, ...], timings: dict[str, float]) -> str:
    """One markdown row per method run: held-out forget and retain figures against the original."""
    orig = results["original"]
    lines = ["| method | face-box PSNR (dB) | Δ | faces detected | retain PSNR (dB) | Δ | retain false detections "
             "| unlearn s | share of pretraining |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines.append(f"| original | {orig['forget_holdout']['face_psnr']:.2f} | | "
                 f"{orig['forget_holdout']['face_detect_rate']:.1%} | {orig['retain_holdout']['psnr']:.2f} | | "
                 f"{orig['retain_holdout']['face_detect_rate']:.1%} | | |")
    for i, name in enumerate(methods):
        row = results["unlearned" if i == 0 else name]
        f, r = row["forget_holdout"], row["retain_holdout"]
        seconds = timings[f"unlearn_{name}_s"]
        lines.append(f"| {name} | {f['face_psnr']:.2f} | {f['face_psnr'] - orig['forget_holdout']['face_psnr']:+.2f} | "
                     f"{f['face_detect_rate']:.1%} | {r['psnr']:.2f} | {r['psnr'] - orig['retain_holdout']['psnr']:+.2f} | "
                     f"{r['face_detect_rate']:.1%} | {seconds:.0f} | {seconds / timings['pretrain_s']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgunlearn demo", description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--method", default="noisy_label",
                        help=f"method, or several separated by commas; known: {', '.join(METHODS.list())}")
    parser.add_argument("--model", default="unet_small",
                        help="registered model or family (unet, vqgan, mae, diffusion = its _small variant) to pretrain")
    parser.add_argument("--size", type=int, default=64, help="tile side in pixels (default: 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-forget", type=int, default=200)
    parser.add_argument("--num-retain", type=int, default=800)
    parser.add_argument("--num-holdout", type=int, default=100, help="held-out tiles of each kind")
    parser.add_argument("--pretrain-steps", type=int, default=1800)
    parser.add_argument("--unlearn-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--original", help="reuse a saved original model directory instead of pretraining")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no accelerator banner per training run
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen reference, by design
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=DeprecationWarning)  # inside Lightning
    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    if not methods:
        parser.error(f"--method names no method: {args.method!r}")
    run_demo(args.out, methods, args.model, args.size, args.seed, args.num_forget, args.num_retain, args.num_holdout,
             args.pretrain_steps, args.unlearn_steps, args.batch_size, args.original, args.accelerator,
             not args.no_progress)
    print(Path(args.out, "summary.md").read_text())
    print(f"wrote {args.out}/metrics.json, {args.out}/grid.png and {args.out}/report.md")
    return 0
