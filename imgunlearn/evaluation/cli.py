"""`imgunlearn evaluate`: score checkpoints on the forget / retain splits and write tables, pictures, a report.

    imgunlearn evaluate --reference-ckpt runs/pretrain/model --ckpt runs/unlearn/model \\
        --data synthetic --task inpaint --ratio 0.25 --out runs/eval

`--ckpt` may repeat (`--ckpt NAME=DIR` names a column; one unnamed checkpoint is called `unlearned`, several
are named after their folders). `--task all` evaluates restoration, centred-box inpainting with boxes of 1/4
and 1/2 of the side, and outpainting, each into its own folder under `--out`. `--rescore` recomputes the
metrics of an earlier run in `--out` from its saved outputs, without loading any model.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch

from imgunlearn.evaluation.glossary import describe_task
from imgunlearn.evaluation.metric_set import METRICS
from imgunlearn.evaluation.runner import evaluate_models, evaluate_saved
from imgunlearn.metrics.features import FeatureUnavailableError

SPLIT_ORDER = ("forget_train", "forget_holdout", "retain_train", "retain_holdout")
ALL_TASKS = (("restore", None), ("inpaint", 0.25), ("inpaint", 0.5), ("outpaint", 0.25))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imgunlearn evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", default=[], metavar="[NAME=]DIR",
                   help="a saved model to evaluate (a save_pretrained folder, or a run folder holding model/)")
    p.add_argument("--reference-ckpt", metavar="DIR", help="the model before unlearning (the 'original' column)")
    p.add_argument("--data", help="'synthetic', a CSV list or a split folder")
    p.add_argument("--task", choices=["restore", "inpaint", "outpaint", "all"], help="how model inputs are made")
    p.add_argument("--ratio", type=float, default=0.25, help="inpaint box side / outpaint border width (share)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--feature", default="stats",
                   help="FID/KID/cosine extractor: stats (default, offline), random_conv, inception, clip or a "
                        "TorchScript/.pt2 file")
    p.add_argument("--logits", default=None, help="Inception Score extractor (inception or a TorchScript file)")
    p.add_argument("--metrics", default=None, help=f"comma-separated subset of: {', '.join(METRICS)}")
    p.add_argument("--splits", default=",".join(SPLIT_ORDER), help="comma-separated splits to evaluate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto")
    p.add_argument("--allow-download", action="store_true", help="let inception/clip/lpips fetch missing weights")
    p.add_argument("--no-save-outputs", action="store_true", help="do not keep the generated images")
    p.add_argument("--rescore", action="store_true", help="recompute metrics from the outputs saved in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    data = p.add_argument_group("data settings (must match the unlearning run's)")
    data.add_argument("--data-settings", metavar="FILE",
                      help="a run's data.json; default: the one beside a checkpoint, if its source matches --data")
    data.add_argument("--seed", type=int, default=None, help="data seed (default 0)")
    data.add_argument("--size", type=int, default=None, help="synthetic tile side (default 64)")
    for name in ("num-forget", "num-retain", "num-holdout-forget", "num-holdout-retain"):
        data.add_argument(f"--{name}", type=int, default=None, help="synthetic tiles per split")
    data.add_argument("--resize", type=int, default=None, help="resize user images to this side")
    return p


def model_dir(path: str) -> Path:
    """The save_pretrained folder at `path`, or at `path/model` for a run folder."""
    root = Path(path)
    for candidate in (root, root / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no saved model at {root} (expected config.json and model.safetensors, or model/)")


def named_checkpoints(ckpts: list[str], reference: str | None) -> dict[str, Path]:
    named: dict[str, Path] = {}
    if reference:
        named["original"] = model_dir(reference)
    for entry in ckpts:
        name, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        if not name:
            name = "unlearned" if len(ckpts) == 1 else Path(path).resolve().name
            if name == "model":
                name = Path(path).resolve().parent.name
        if name in named:
            raise ValueError(f"two checkpoints are named {name!r}; name them with --ckpt NAME=DIR")
        named[name] = model_dir(path)
    if not named:
        raise ValueError("nothing to evaluate: give --ckpt and/or --reference-ckpt")
    return named


def data_settings(args: argparse.Namespace, checkpoints: dict[str, Path]) -> tuple[dict[str, Any], Path | None]:
    """DataModule settings: a run's data.json (given or found beside a checkpoint), then explicit flags."""
    from imgunlearn.data.datamodule import ForgetRetainDataModule

    accepted = set(inspect.signature(ForgetRetainDataModule.__init__).parameters) - {
        "self", "source", "task", "task_args", "batch_size", "eval_batch_size", "num_workers", "proxy_retain"}
    found: Path | None = Path(args.data_settings) if args.data_settings else None
    if found is None:
        for path in checkpoints.values():
            for candidate in (path / "data.json", path.parent / "data.json"):
                if candidate.is_file() and json.loads(candidate.read_text()).get("source") == args.data:
                    found = candidate
                    break
            if found:
                break
    settings: dict[str, Any] = {}
    if found is not None:
        if not found.is_file():
            raise FileNotFoundError(f"data settings file not found: {found}")
        settings = {k: v for k, v in json.loads(found.read_text()).items() if k in accepted}
    flags = {"seed": args.seed, "size": args.size, "num_forget": args.num_forget, "num_retain": args.num_retain,
             "num_holdout_forget": args.num_holdout_forget, "num_holdout_retain": args.num_holdout_retain,
             "resize": args.resize}
    settings.update({k: v for k, v in flags.items() if v is not None})
    return settings, found


def run_task(args: argparse.Namespace, task: str, ratio: float | None, out: Path, checkpoints: dict[str, Path],
             settings: dict[str, Any], device: str) -> dict:
    from imgunlearn.data.datamodule import ForgetRetainDataModule
    from imgunlearn.models.base import load_model

    task_args = {"ratio": ratio} if task in ("inpaint", "outpaint") else {}
    datamodule = ForgetRetainDataModule(source=args.data, task=task, task_args=task_args, **settings)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    datasets = {}
    for split in splits:
        dataset = datamodule.split_dataset(split)
        if len(dataset) == 0:
            print(f"imgunlearn evaluate: split {split} is empty; skipped", file=sys.stderr)
            continue
        datasets[split] = dataset
    models = {name: load_model(path) for name, path in checkpoints.items()}
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    info = {"task": describe_task(task, ratio), "checkpoints": {k: str(v) for k, v in checkpoints.items()},
            "data": f"{args.data} (settings: {json.dumps(settings, sort_keys=True)})"}
    return evaluate_models(models, datasets, metrics=metrics, batch_size=args.batch_size, device=device, output_dir=out,
                           save_outputs=not args.no_save_outputs, feature=args.feature, logits=args.logits,
                           allow_download=args.allow_download, info=info, progress=not args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    out = Path(args.out)
    try:
        if args.rescore:
            metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
            evaluate_saved(out, metrics=metrics, feature=args.feature, logits=args.logits, device=device,
                           allow_download=args.allow_download, progress=not args.quiet)
            print(f"rescored {out / 'metrics.json'}")
            return 0
        if not args.data or not args.task:
            raise ValueError("--data and --task are required (unless --rescore)")
        checkpoints = named_checkpoints(args.ckpt, args.reference_ckpt)
        settings, found = data_settings(args, checkpoints)
        if found is not None:
            print(f"data settings from {found}")
        tasks = ALL_TASKS if args.task == "all" else ((args.task, args.ratio if args.task != "restore" else None),)
        for task, ratio in tasks:
            where = out if len(tasks) == 1 else out / (task if ratio is None else f"{task}_{ratio:g}")
            results = run_task(args, task, ratio, where, checkpoints, settings, device)
            print(summary(results, where))
    except (ValueError, FileNotFoundError, FeatureUnavailableError) as error:
        print(f"imgunlearn evaluate: {error}", file=sys.stderr)
        return 2
    return 0


def summary(results: dict, out: Path) -> str:
    """A few lines for the terminal: whole-image and face-box PSNR per model on the held-out splits."""
    lines = [f"wrote {out / 'report.md'}"]
    for model, per_split in results.items():
        if model in ("ground_truth", "input"):
            continue
        parts = []
        for split in ("forget_holdout", "retain_holdout"):
            metrics = per_split.get(split, {})
            for key in ("face_psnr", "psnr"):
                if metrics.get(key) is not None:
                    parts.append(f"{split} {key} {metrics[key]:.2f} dB")
                    break
        lines.append(f"  {model}: " + ("; ".join(parts) if parts else "see metrics.md"))
    return "\n".join(lines)


__all__ = ["build_parser", "main"]
