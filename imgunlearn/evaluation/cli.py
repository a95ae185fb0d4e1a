"""`imgunlearn evaluate`: score checkpoints on the forget / retain splits and write tables, pictures, a report.

    imgunlearn evaluate --reference-ckpt runs/pretrain/model --ckpt runs/unlearn/model \\
        --data synthetic --out runs/eval

`--ckpt` may repeat (`--ckpt NAME=DIR` names a column; one unnamed checkpoint is called `unlearned`, several
are named after their folders). Model inputs are made with the task saved beside the checkpoints (`task.json`)
unless `--task` says otherwise: `--task` of the saved task's kind keeps its settings (noise, blur; `--ratio`
replaces its ratio), another kind uses that kind's defaults, and `--task all` evaluates restoration, centred-box
inpainting with boxes of 1/4 and 1/2 of the side, and outpainting (the paper's protocol), each into its own
folder under `--out`.

`--out` follows the run-directory rule of `imgunlearn.runs`: another run's results there are refused unless
`--overwrite` (which removes them first); results are assembled beside it and moved into place when the
evaluation succeeds; `--out` may not equal or contain a checkpoint or the data. `--rescore` works in place on a
complete earlier run in `--out`: it rescores the outputs saved there without loading any model and rewrites its
metrics, tables and report (each file atomically); its `run.json` says `running` meanwhile and records when it
was rescored. A model whose outputs contain NaN or inf is refused, naming the model and the split.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, Namespace

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
from imgunlearn.evaluation.glossary import describe_task
from imgunlearn.evaluation.metric_set import METRICS
from imgunlearn.evaluation.runner import evaluate_models, evaluate_saved
from imgunlearn.io import write_json
from imgunlearn.metrics.features import FeatureUnavailableError
from imgunlearn.runs import COMPLETE, FAILED, RUN_FILE, RUNNING, RunDirectoryError, open_run, read_run

SPLIT_ORDER = ("forget_train", "forget_holdout", "retain_train", "retain_holdout")
TASK_KINDS = ("restore", "inpaint", "outpaint", "hybrid", "all")
ALL_TASKS = (("restore", None), ("inpaint", 0.25), ("inpaint", 0.5), ("outpaint", 0.25))
DEFAULT_RATIO = 0.25
RESCORABLE = ("evaluate", "demo")

TaskChoice = tuple[str | None, Any, str]
"""A task to evaluate: its folder under --out (None: --out itself), the `Task`, and where it came from."""


def build_parser() -> ArgumentParser:
    p = command_parser("imgunlearn evaluate", __doc__.split("\n")[0])
    add_option(p, "ckpt", action="append", default=[],
               help="[NAME=]DIR: a saved model to evaluate (a save_pretrained folder, or a run folder holding "
                    "model/); repeatable")
    add_option(p, "reference_ckpt", type=str | None, default=None,
               help="the model before unlearning (the 'original' column)")
    add_option(p, "data", type=str | None, default=None, help="'synthetic', a CSV list or a split folder")
    add_option(p, "task", type=str | None, default=None,
               help=f"how model inputs are made: {', '.join(TASK_KINDS)}; default: the task saved with the "
                    "checkpoints")
    add_option(p, "ratio", type=float | None, default=None,
               help=f"inpaint box side / outpaint border width (share; default: the saved task's, else "
                    f"{DEFAULT_RATIO})")
    add_output_options(p)
    add_option(p, "feature", type=str, default="stats",
               help="FID/KID/cosine extractor: stats (default, offline), random_conv, inception, clip or a "
                    "TorchScript/.pt2 file")
    add_option(p, "logits", type=str | None, default=None, help="Inception Score extractor (inception or a file)")
    add_option(p, "metrics", type=str | None, default=None, help=f"comma-separated subset of: {', '.join(METRICS)}")
    add_option(p, "splits", type=str, default=",".join(SPLIT_ORDER), help="comma-separated splits to evaluate")
    add_option(p, "batch_size", type=int, default=32)
    add_device_option(p)
    add_option(p, "allow_download", action="store_true", help="let inception/clip/lpips fetch missing weights")
    add_option(p, "no_save_outputs", action="store_true", help="do not keep the generated images")
    add_option(p, "rescore", action="store_true", help="recompute the metrics of the complete run in --out from "
                                                        "its saved outputs, in place")
    add_option(p, "quiet", action="store_true", help="no progress bars")
    add_option(p, "data_settings", type=str | None, default=None,
               help="a run's data.json (must match the unlearning run's); default: the one beside a checkpoint, "
                    "if its source matches --data")
    add_option(p, "seed", type=int | None, default=None, help="data seed (default 0)")
    add_option(p, "size", type=int | None, default=None, help="synthetic tile side (default 64)")
    for name in ("num_forget", "num_retain", "num_holdout_forget", "num_holdout_retain"):
        add_option(p, name, type=int | None, default=None, help="synthetic tiles per split")
    add_option(p, "resize", type=int | None, default=None, help="resize user images to this side")
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


def data_settings(args: Namespace, checkpoints: dict[str, Path]) -> tuple[dict[str, Any], Path | None]:
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


def saved_tasks(checkpoints: dict[str, Path]) -> dict[str, Any]:
    """The task saved beside each checkpoint that has one (`task.json`), by checkpoint name."""
    from imgunlearn.data.tasks import task_from_file

    return {name: task_from_file(path / "task.json") for name, path in checkpoints.items()
            if (path / "task.json").is_file()}


def resolve_tasks(kind: str | None, ratio: float | None, checkpoints: dict[str, Path]) -> list[TaskChoice]:
    """The tasks to evaluate: `(folder under --out or None, Task, where it came from)`.

    Without `kind`, the task saved with the checkpoints (they must agree). With `kind` of the saved task's kind,
    the saved task (its ratio replaced by `ratio` when given); with another kind, that kind's defaults.
    """
    from imgunlearn.data.tasks import make_task

    if kind is not None and kind not in TASK_KINDS:
        raise ValueError(f"unknown --task {kind!r}; choose from {', '.join(TASK_KINDS)}")
    if ratio is not None and kind in ("restore", "all"):
        raise ValueError(f"--ratio {ratio} does not apply to --task {kind} (only to inpaint and outpaint)")
    saved = saved_tasks(checkpoints)
    distinct = {json.dumps(t.to_config(), sort_keys=True): t for t in saved.values()}
    if kind is None:
        if not saved:
            raise ValueError(f"no task saved with the checkpoints ({', '.join(str(p) for p in checkpoints.values())}"
                             " hold no task.json); give --task")
        if len(distinct) > 1:
            listed = "; ".join(f"{name}: {describe_task(t.to_config())}" for name, t in saved.items())
            raise ValueError(f"the checkpoints were saved with different tasks ({listed}); give --task")
        task = next(iter(distinct.values()))
        if ratio is not None:
            if task.name == "restore":
                raise ValueError(f"--ratio {ratio} does not apply to the saved restore task")
            task = dataclasses.replace(task, ratio=ratio)
        names = ", ".join(sorted(saved))
        return [(None, task, f"saved with {names}")]

    def saved_or_default(name: str, box_ratio: float | None) -> tuple[Any, str]:
        matching = [t for t in distinct.values() if t.name == name]
        if len(matching) == 1:
            task = matching[0] if box_ratio is None else dataclasses.replace(matching[0], ratio=box_ratio)
            return task, "the saved task's settings"
        args = {"ratio": DEFAULT_RATIO if box_ratio is None else box_ratio} if name in ("inpaint", "outpaint") else {}
        return make_task(name, **args), f"the defaults of {name}"

    if kind == "all":
        tasks = []
        for name, box_ratio in ALL_TASKS:
            task, origin = saved_or_default(name, None) if box_ratio is None else (
                make_task(name, ratio=box_ratio), "the paper's protocol")
            tasks.append((name if box_ratio is None else f"{name}_{box_ratio:g}", task, origin))
        return tasks
    return [(None, *saved_or_default(kind, ratio))]


def run_task(args: Namespace, task: Any, out: Path, checkpoints: dict[str, Path], settings: dict[str, Any],
             device: str) -> dict:
    from imgunlearn.data.datamodule import ForgetRetainDataModule
    from imgunlearn.models.base import load_model

    datamodule = ForgetRetainDataModule(source=args.data, task=task, **settings)
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
    info = {"task": describe_task(task.to_config()), "task_settings": task.to_config(),
            "checkpoints": {k: str(v) for k, v in checkpoints.items()},
            "data": f"{args.data} (settings: {json.dumps(settings, sort_keys=True)})"}
    return evaluate_models(models, datasets, metrics=metrics, batch_size=args.batch_size, device=device, output_dir=out,
                           save_outputs=not args.no_save_outputs, feature=args.feature, logits=args.logits,
                           allow_download=args.allow_download, info=info, progress=not args.quiet)


def rescore(args: Namespace, device: str) -> None:
    """Rescore the complete run in `--out` in place (see the module docstring)."""
    out = Path(args.out)
    if args.overwrite:
        raise ValueError("--rescore rescores the run in --out in place; --overwrite does not apply")
    record = read_run(out)
    if record is None or record.get("command") not in RESCORABLE or not (
            record.get("status") == COMPLETE or record.get("rescoring")):
        found = "no run.json" if record is None else \
            f"a {record.get('status')} run of `imgunlearn {record.get('command')}`"
        raise RunDirectoryError(f"--rescore needs a complete evaluate or demo run in {out}; it holds {found}")
    folders = [out] if (out / "evaluation.json").is_file() else sorted(p.parent for p in out.glob("*/evaluation.json"))
    if not folders:
        raise FileNotFoundError(f"{out} holds no evaluation.json to rescore")
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    write_json(out / RUN_FILE, {**record, "status": RUNNING, "rescoring": True})
    try:
        for folder in folders:
            evaluate_saved(folder, metrics=metrics, feature=args.feature, logits=args.logits, device=device,
                           allow_download=args.allow_download, progress=not args.quiet)
    except BaseException as error:
        write_json(out / RUN_FILE, {**record, "status": FAILED, "rescoring": True,
                                    "error": f"rescoring: {type(error).__name__}: {error}"})
        raise
    rescored = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "metrics": metrics, "feature": args.feature,
                "logits": args.logits}
    write_json(out / RUN_FILE, {**{k: v for k, v in record.items() if k not in ("rescoring", "error")},
                                "status": COMPLETE, "rescored": rescored})
    for folder in folders:
        print(f"rescored {folder / 'metrics.json'}")


def evaluate_command(parser: ArgumentParser, args: Namespace) -> int:
    device = resolve_device(args.device)
    if args.rescore:
        rescore(args, device)
        return 0
    if not args.data:
        raise ValueError("--data is required (unless --rescore)")
    checkpoints = named_checkpoints(args.ckpt, args.reference_ckpt)
    tasks = resolve_tasks(args.task, args.ratio, checkpoints)
    settings, found = data_settings(args, checkpoints)
    if found is not None:
        print(f"data settings from {found}")
    inputs = [args.reference_ckpt, *(entry.rpartition("=")[2] for entry in args.ckpt), *checkpoints.values(), found,
              None if args.data == "synthetic" else args.data]  # as given first, so an error names what was typed
    config = {k: v for k, v in config_dict(parser, args).items() if k not in ("overwrite", "quiet")}
    written = []
    with open_run(args.out, command="evaluate", config=config, overwrite=args.overwrite, inputs=inputs) as run:
        save_config(parser, args, run.work)
        for folder, task, origin in tasks:
            print(f"task{f' {folder}' if folder else ''}: {describe_task(task.to_config())} ({origin})")
            where = run.work if folder is None else run.work / folder
            written.append((Path(args.out) if folder is None else Path(args.out) / folder,
                            run_task(args, task, where, checkpoints, settings, device)))
    for where, results in written:
        print(summary(results, where))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def command(args: Namespace) -> int:
        try:
            return evaluate_command(parser, args)
        except FeatureUnavailableError as error:
            raise ValueError(str(error)) from None

    return run_command("evaluate", parser, argv, command)


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
