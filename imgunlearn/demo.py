"""`imgunlearn demo`: the embedded end-to-end example.

A drone-survey model must forget the children's faces it saw. The demo generates the synthetic aerial survey
(forget tiles carry real face crops), trains the original restoration model from scratch, unlearns the forget
tiles with one or more methods, and evaluates original and unlearned models side by side on the training
forget tiles and on held-out tiles of both kinds. Each method runs with its own defaults, which are the
settings measured on this demo (BENCHMARKS.md). It writes into `--out`:

    original/, unlearned/         saved models (safetensors + config.json + task.json)
    methods/<name>/               every further method's model, when several are run
    retrain/                      with --retrain_reference: a model trained from scratch on the retain set only
    metrics.json, metrics.csv/md  {"original": {SPLIT: {...}}, "unlearned": {SPLIT: {...}}, ...}
    grid.png, tradeoff.png        input / original / unlearned / ground truth; retain vs forget quality
    report.md, summary.md         the report, and one row per method run with its timings
    splits.csv, task.json, data.json, demo.json, config.yaml, run.json (written last)

`--out` follows the run-directory rule of `imgunlearn.runs`: another run's results there are refused unless
`--overwrite` (which removes them first); a failed run leaves nothing in place; `--out` may not equal or contain
the `--original` it reuses.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader

from imgunlearn.api import load_task, pretrain, save, unlearn
from imgunlearn.command import add_option, add_output_options, command_parser, config_dict, run_command
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.data.sampling import ShuffledSampler
from imgunlearn.evaluation import evaluate_models
from imgunlearn.io import atomic_write_text, write_json
from imgunlearn.methods import METHODS, UnlearningModule
from imgunlearn.models.base import ImageToImageModel, create_model, load_model
from imgunlearn.registry import MODELS
from imgunlearn.runs import open_run
from imgunlearn.training import Pretrainer

SPLITS = ("forget_train", "forget_holdout", "retain_holdout")

TASK_ARGS = {"noise_std": 0.1, "downsample": 1}
"""The demo's restoration task: pixel noise of σ 0.1 and no blur. At 64 px a down/up-sampling blur removes
facial detail that no small model restores on unseen faces (face-box PSNR stays near the input's), so the
original would barely outperform its own input there."""

NOT_SETTINGS = ("self", "model", "task", "args", "kwargs")


def method_settings(name: str) -> dict[str, Any]:
    """The settings a registered method runs with when given none: its constructor defaults.

    Each class's own keyword defaults win over its base classes' (a method states the values measured for it).
    """
    settings: dict[str, Any] = {}
    for cls in METHODS.get(name).__mro__:
        if not (isinstance(cls, type) and issubclass(cls, UnlearningModule)):
            continue
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name not in NOT_SETTINGS and param.default is not inspect.Parameter.empty:
                settings.setdefault(param.name, param.default)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def run_demo(out: str | Path = "runs/demo", methods: tuple[str, ...] = ("noisy_label",), model: str = "unet_small",
             size: int = 64, seed: int = 0, num_forget: int = 200, num_retain: int = 800, num_holdout: int = 100,
             pretrain_steps: int = 1800, unlearn_steps: int = 300, batch_size: int = 16, original: str | None = None,
             accelerator: str = "cpu", progress: bool = True, overwrite: bool = False, retrain_reference: bool = False,
             retrain: str | None = None, method_args: Mapping[str, Mapping[str, Any]] | None = None,
             config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the demo into `out` (see the module docstring); returns the metrics written to `out/metrics.json`.

    Args:
        overwrite: Replace another run's results in `out` (removed first).
        retrain_reference: Also train a model from scratch on the retain set only (same recipe and steps) and
            evaluate it as the `retrain` row.
        retrain: A saved retrain reference to evaluate as the `retrain` row instead of training one (a model of
            the original's config trained on the retain set only, e.g. by `scripts/original_cache.py
            --retain-only`); implies `retrain_reference`.
        method_args: Settings of a method that replace its defaults, by method name (Python API only), e.g.
            `{"encoder_teacher": {"retain_alpha": 2.0}}`.
        config: The resolved command-line configuration, saved as `config.yaml` (default: these arguments).
    """
    for name in methods:
        METHODS.get(name)  # unknown names fail before any work
    method_args = {name: dict(settings) for name, settings in (method_args or {}).items()}
    if set(method_args) - set(methods):
        raise ValueError(f"method_args names methods the demo does not run: {sorted(set(method_args) - set(methods))}")
    if model not in MODELS and f"{model}_small" in MODELS:
        model = f"{model}_small"  # a family name stands for its CPU-sized variant
    MODELS.get(model)
    retrain_reference = retrain_reference or retrain is not None
    if config is None:
        config = {"out": str(out), "method": ",".join(methods), "model": model, "size": size, "seed": seed,
                  "num_forget": num_forget, "num_retain": num_retain, "num_holdout": num_holdout,
                  "pretrain_steps": pretrain_steps, "unlearn_steps": unlearn_steps, "batch_size": batch_size,
                  "original": original, "accelerator": accelerator, "retrain_reference": retrain_reference,
                  "retrain": retrain, **({"method_args": method_args} if method_args else {})}
    with open_run(out, command="demo", config=config, overwrite=overwrite, inputs=[original, retrain]) as run:
        atomic_write_text(run.work / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))
        return _demo(run.work, methods, model, size, seed, num_forget, num_retain, num_holdout, pretrain_steps,
                     unlearn_steps, batch_size, original, accelerator, progress, retrain_reference, retrain,
                     method_args)


def _demo(out: Path, methods: tuple[str, ...], model: str, size: int, seed: int, num_forget: int, num_retain: int,
          num_holdout: int, pretrain_steps: int, unlearn_steps: int, batch_size: int, original: str | None,
          accelerator: str, progress: bool, retrain_reference: bool, retrain: str | None,
          method_args: dict[str, dict[str, Any]]) -> dict[str, Any]:
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
    if retrain is not None:  # checked before any unlearning runs
        retrained, timings["retrain_s"] = reuse_original(Path(retrain), data.task)
        if retrained.config != original_model.config:
            raise ValueError(f"the retrain reference {retrain} is a {retrained.config}, the original a "
                             f"{original_model.config}")

    unlearned: dict[str, ImageToImageModel] = {}
    for i, name in enumerate(methods):
        start = time.perf_counter()
        unlearned[name] = unlearn(original_model, data, method=name, max_steps=unlearn_steps, accelerator=accelerator,
                                  progress=progress, seed=seed, **method_args.get(name, {}))
        timings[f"unlearn_{name}_s"] = time.perf_counter() - start
        save(unlearned[name], out / ("unlearned" if i == 0 else f"methods/{name}"), data.task)

    rows = {"original": original_model, "unlearned": unlearned[methods[0]]}
    rows.update({name: m for name, m in unlearned.items() if name != methods[0]})
    if retrain is not None:
        rows["retrain"] = retrained
        save(retrained, out / "retrain", data.task)
    elif retrain_reference:
        start = time.perf_counter()
        rows["retrain"] = retrain_on_retain_set(original_model.config, data, pretrain_steps, seed, accelerator,
                                                progress)
        timings["retrain_s"] = time.perf_counter() - start
        save(rows["retrain"], out / "retrain", data.task)

    start = time.perf_counter()
    info = {"task": data.task.to_config(), "methods": list(methods), "model": model, "seed": seed}
    results = evaluate_models(rows, {split: data.split_dataset(split) for split in SPLITS}, output_dir=out,
                              info=info, progress=progress)
    timings["evaluate_s"] = time.perf_counter() - start

    summary = {"methods": list(methods), "model": model, "size": size, "seed": seed,
               "pretrain_steps": pretrain_steps, "unlearn_steps": unlearn_steps, "batch_size": batch_size,
               "retrain_reference": retrain_reference,
               "method_args": {name: {**method_settings(name), "seed": seed, **method_args.get(name, {})}
                               for name in methods}, "timings": timings}
    write_json(out / "demo.json", summary)
    atomic_write_text(out / "summary.md", summary_table(results, methods, timings))
    return results


def retrain_on_retain_set(model_config: Mapping[str, Any], data: ForgetRetainDataModule, steps: int, seed: int,
                          accelerator: str = "cpu", progress: bool = True) -> ImageToImageModel:
    """A model of the original's architecture trained from scratch on the retain set only, with the original's
    recipe (`pretrain`'s optimiser, schedule and batch size) and number of steps: what never seeing the forget
    set gives."""
    arguments = dict(model_config)
    torch.manual_seed(seed)
    module = Pretrainer(create_model(arguments.pop("name"), **arguments))
    retain = data.split_dataset("retain_train", fixed=False)
    loader = DataLoader(retain, batch_size=data.hparams.batch_size, sampler=ShuffledSampler(len(retain), seed=seed))
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    return module.model.eval()


def reuse_original(directory: Path, task: Any) -> tuple[ImageToImageModel, float]:
    """A saved model and its training time, from the `demo.json` beside it (a demo run's or an original cache
    entry's): `retrain_s` for a folder named `retrain`, `pretrain_s` otherwise; NaN when unknown."""
    saved_task = load_task(directory)
    if saved_task != task:
        raise ValueError(f"{directory} was trained for task {saved_task}, the demo uses {task}")
    record = directory.parent / "demo.json"
    timings = json.loads(record.read_text())["timings"] if record.is_file() else {}
    seconds = timings.get("retrain_s" if directory.name == "retrain" else "pretrain_s", float("nan"))
    return load_model(directory), float(seconds)


def summary_table(results: dict[str, Any], methods: tuple[str, ...], timings: dict[str, float]) -> str:
    """One markdown row per method run: held-out forget and retain figures against the original."""
    orig = results["original"]

    def row(label: str, values: dict[str, Any], seconds: float | None) -> str:
        f, r = values["forget_holdout"], values["retain_holdout"]
        time_cells = "| |" if seconds is None else f"| {seconds:.0f} | {seconds / timings['pretrain_s']:.0%} |"
        return (f"| {label} | {f['face_psnr']:.2f} | {f['face_psnr'] - orig['forget_holdout']['face_psnr']:+.2f} | "
                f"{f['face_detect_rate']:.1%} | {r['psnr']:.2f} | {r['psnr'] - orig['retain_holdout']['psnr']:+.2f} | "
                f"{r['face_detect_rate']:.1%} {time_cells}")

    lines = ["| method | face-box PSNR (dB) | Δ | faces detected | retain PSNR (dB) | Δ | retain false detections "
             "| unlearn s | share of pretraining |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines.append(f"| original | {orig['forget_holdout']['face_psnr']:.2f} | | "
                 f"{orig['forget_holdout']['face_detect_rate']:.1%} | {orig['retain_holdout']['psnr']:.2f} | | "
                 f"{orig['retain_holdout']['face_detect_rate']:.1%} | | |")
    if "retrain" in results:
        lines.append(row("retrain (retain set only)", results["retrain"], None))
    for i, name in enumerate(methods):
        lines.append(row(name, results["unlearned" if i == 0 else name], timings[f"unlearn_{name}_s"]))
    return "\n".join(lines) + "\n"


def build_parser():
    """The demo's options (jsonargparse: `--config`, `--print_config`, dashed aliases)."""
    parser = command_parser("imgunlearn demo", __doc__.split("\n\n")[1])
    add_output_options(parser, required=False, help="output directory (default: runs/demo)")
    parser.set_defaults(out="runs/demo")
    add_option(parser, "method", type=str, default="noisy_label",
               help=f"method, or several separated by commas; known: {', '.join(METHODS.list())}")
    add_option(parser, "model", type=str, default="unet_small",
               help="registered model or family (unet, vqgan, mae, diffusion = its _small variant) to pretrain")
    add_option(parser, "size", type=int, default=64, help="tile side in pixels")
    add_option(parser, "seed", type=int, default=0)
    add_option(parser, "num_forget", type=int, default=200)
    add_option(parser, "num_retain", type=int, default=800)
    add_option(parser, "num_holdout", type=int, default=100, help="held-out tiles of each kind")
    add_option(parser, "pretrain_steps", type=int, default=1800)
    add_option(parser, "unlearn_steps", type=int, default=300)
    add_option(parser, "batch_size", type=int, default=16)
    add_option(parser, "original", type=str | None, default=None,
               help="reuse a saved original model directory instead of pretraining")
    add_option(parser, "retrain_reference", action="store_true",
               help="also train a model from scratch on the retain set only (same recipe and steps) as a "
                    "'retrain' row")
    add_option(parser, "retrain", type=str | None, default=None,
               help="reuse a saved retrain reference (the original's model trained on the retain set only) as the "
                    "'retrain' row instead of training one")
    add_option(parser, "accelerator", type=str, default="cpu")
    add_option(parser, "no_progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def demo(cfg: Any) -> int:
        methods = tuple(m.strip() for m in cfg.method.split(",") if m.strip())
        if not methods:
            raise ValueError(f"--method names no method: {cfg.method!r}")
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no accelerator banner per training run
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen reference
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=DeprecationWarning)  # inside Lightning
        config = {k: v for k, v in config_dict(parser, cfg).items() if k not in ("overwrite", "no_progress")}
        run_demo(cfg.out, methods, cfg.model, cfg.size, cfg.seed, cfg.num_forget, cfg.num_retain, cfg.num_holdout,
                 cfg.pretrain_steps, cfg.unlearn_steps, cfg.batch_size, cfg.original, cfg.accelerator,
                 not cfg.no_progress, overwrite=cfg.overwrite, retrain_reference=cfg.retrain_reference, retrain=cfg.retrain,
                 config=config)
        print(Path(cfg.out, "summary.md").read_text())
        print(f"wrote {cfg.out}/metrics.json, {cfg.out}/grid.png and {cfg.out}/report.md")
        return 0

    return run_command("demo", parser, argv, demo)
