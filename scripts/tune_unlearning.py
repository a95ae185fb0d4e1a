"""Tuned against shipped settings on the embedded survey: pretrain, `imgunlearn tune`, held-out figures.

Trains the demo's original (unet_small, 64 px restoration, 1,800 steps), tunes a method with `imgunlearn tune`
within a time budget that is a share of the measured pretraining time, unlearns with the shipped and with the
tuned settings on the full training splits, and evaluates both on the held-out tiles (which tuning never read).
Prints a markdown table and the timings (wall and process CPU seconds, which vary less on a shared machine).

    python scripts/tune_unlearning.py --out runs/tune_bench --method noisy_label --budget 1.6
    python scripts/tune_unlearning.py --out runs/tune_bench --method encoder_teacher --original runs/tune_bench/original

`--source DIR/splits.csv` runs the same on a CSV dataset (e.g. one written by `scripts/make_photo_dataset.py`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import torch

from imgunlearn.api import pretrain, unlearn
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.demo import TASK_ARGS
from imgunlearn.evaluation import evaluate_models
from imgunlearn.models import load_model
from imgunlearn.pipeline import save


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def pretrain_timing(original_dir: Path) -> dict:
    """The original's pretraining time: written by this script, or by `scripts/original_cache.py` (wall only)."""
    mine, cached = original_dir.parent / "pretrain_timing.json", original_dir.parent / "demo.json"
    if mine.is_file():
        return json.loads(mine.read_text())
    if cached.is_file():
        record = json.loads(cached.read_text())
        return {"wall_s": record["timings"]["pretrain_s"], "cpu_s": float("nan"), "steps": record["pretrain_steps"]}
    raise SystemExit(f"no pretraining time next to {original_dir} (pretrain_timing.json or demo.json)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--method", default="noisy_label")
    parser.add_argument("--budget", type=float, default=1.6,
                        help="tuning wall-time budget (--max_minutes) as a multiple of the pretraining time; the "
                             "trial running at the limit still finishes")
    parser.add_argument("--trials", type=int, default=10,
                        help="upper bound on trials (the time budget decides); a third of them, at least 3, are "
                             "random start-up trials of the TPE sampler")
    parser.add_argument("--source", default="synthetic", help="'synthetic' (the embedded survey) or a CSV path")
    parser.add_argument("--steps", type=int, default=300, help="unlearning steps (trials and final runs)")
    parser.add_argument("--min-steps", type=int, default=None, help="search steps between this and --steps")
    parser.add_argument("--pretrain-steps", type=int, default=1800)
    parser.add_argument("--original", help="reuse a saved original made by an earlier run of this script")
    parser.add_argument("--start-from-defaults", default="true", choices=["true", "false"])
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    data = ForgetRetainDataModule(source=args.source, size=64, task="restore", task_args=TASK_ARGS, batch_size=16)
    data.setup("fit")
    timing_file = out / "pretrain_timing.json"
    if args.original:
        original_dir = Path(args.original)
        pre = pretrain_timing(original_dir)
    else:
        model, wall, cpu = timed(lambda: pretrain("unet_small", data, max_steps=args.pretrain_steps, progress=False))
        original_dir = save(model, out / "original", data.task)
        pre = {"wall_s": wall, "cpu_s": cpu, "steps": args.pretrain_steps}
        timing_file.write_text(json.dumps(pre, indent=2))
    original = load_model(original_dir)

    tune_dir = out / f"tune_{args.method}"
    argv = ["tune", "--original", str(original_dir), "--method", args.method, "--out", str(tune_dir), "--overwrite",
            "--trials", str(args.trials), "--max_steps", str(args.steps), "--max_minutes",
            f"{args.budget * pre['wall_s'] / 60:.3f}", "--data.task_args", json.dumps(TASK_ARGS),
            "--data.source", args.source,
            "--start_from_defaults", args.start_from_defaults]
    if args.min_steps:
        argv += ["--min_steps", str(args.min_steps)]
    from imgunlearn.cli import main as cli

    code, tune_wall, tune_cpu = timed(lambda: cli(argv))
    if code != 0:
        raise SystemExit(f"imgunlearn {' '.join(argv)} failed")
    summary = json.loads((tune_dir / "summary.json").read_text())
    best = dict(summary["best"]["settings"])
    steps = best.pop("max_steps")

    models = {"original": original}
    seconds = {}
    models["shipped"], seconds["shipped"], _ = timed(lambda: unlearn(original, data, method=args.method,
                                                                     max_steps=args.steps, progress=False, seed=0))
    models["tuned"], seconds["tuned"], _ = timed(lambda: unlearn(original, data, method=args.method, max_steps=steps,
                                                                 progress=False, **best))
    results = evaluate_models(models, {s: data.split_dataset(s) for s in ("forget_holdout", "retain_holdout")},
                              metrics=["psnr", "face_psnr", "face_detect_rate"], report=False, progress=False)
    o = results["original"]
    lines = [f"Pretraining: {pre['steps']} steps, {pre['wall_s']:.0f} s wall, {pre['cpu_s']:.0f} s CPU. "
             f"Tuning ({summary['trials']} trials, budget {args.budget:g}x pretraining wall time): "
             f"{tune_wall:.0f} s wall ({tune_wall / pre['wall_s']:.2f}x pretraining), {tune_cpu:.0f} s CPU "
             f"({tune_cpu / pre['cpu_s']:.2f}x). Chosen: trial {summary['best']['trial']}, {steps} steps, "
             f"{json.dumps(best)}.", "",
             "| settings | face-box PSNR Δ (dB) | faces detected | retain PSNR Δ (dB) | unlearn s |", "|---|---|---|---|---|",
             f"| original | ({o['forget_holdout']['face_psnr']:.2f}) | {o['forget_holdout']['face_detect_rate']:.0%} | "
             f"({o['retain_holdout']['psnr']:.2f}) | |"]
    for row in ("shipped", "tuned"):
        f, r = results[row]["forget_holdout"], results[row]["retain_holdout"]
        lines.append(f"| {args.method} {row} | {f['face_psnr'] - o['forget_holdout']['face_psnr']:+.2f} | "
                     f"{f['face_detect_rate']:.0%} | {r['psnr'] - o['retain_holdout']['psnr']:+.2f} | "
                     f"{seconds[row]:.0f} |")
    text = "\n".join(lines) + "\n"
    (out / f"result_{args.method}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
