"""Speed of each I2I model family: pretraining throughput and inference time, as a markdown table.

For every model (default: the `*_small` variants) on random images of `--size` px with a hybrid task mask,
it times `--steps` AdamW steps of the family's `reconstruction_loss` (after `--warmup` untimed steps) and
`--repeats` no-grad `forward` calls (for `diffusion` that is its full few-step DDIM sampling loop).

    OMP_NUM_THREADS=2 python scripts/bench_families.py --size 64 --batch 16 --steps 20
    python scripts/bench_families.py --models unet_tiny mae_tiny --size 32 --steps 2 --warmup 1 --repeats 1

With `--quality` it measures what the families restore and forget instead: for every model it takes the demo's
original from the cache of `scripts/original_cache.py` (keyed by the model config, the demo's data settings and the
pretraining recipe; pretrained only when the cache has no entry), runs `imgunlearn demo --original` with the given
methods, and prints one row per (model, method): held-out face-box PSNR, faces detected, retain PSNR, their changes
and the unlearning time against the original's pretraining time. A rerun reuses the originals.

    python scripts/bench_families.py --quality --models unet_small unet_small_noskip0 --methods encoder_teacher \
        --pretrain-steps 1800 --unlearn-steps 300 --cache runs/original_cache --out runs/bench_families
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from original_cache import cached_original, demo_data_args

from imgunlearn.data.tasks import make_task
from imgunlearn.demo import run_demo
from imgunlearn.methods import METHODS
from imgunlearn.models import create_model, list_models


def bench(name: str, size: int, batch: int, steps: int, warmup: int, repeats: int, seed: int) -> dict[str, str]:
    """Timings of one model; images are random, drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=generator)
    model_input, mask = make_task("hybrid", ratio=0.25)(image, generator)
    model = create_model(name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.reconstruction_loss(model_input, mask, image).backward()
        optimizer.step()

    model.train()
    for _ in range(warmup):
        train_step()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        model(model_input, mask)  # untimed warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(model_input, mask)
    infer_seconds = (time.perf_counter() - start) / repeats
    steps_note = f" ({model.config['num_inference_steps']} DDIM steps)" if model.family == "diffusion" else ""
    return {
        "model": name,
        "params (M)": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}",
        "pretrain img/s": f"{steps * batch / train_seconds:.1f}",
        "forward ms/img": f"{1000 * infer_seconds / batch:.1f}{steps_note}",
    }


def quality(name: str, methods: list[str], args: argparse.Namespace) -> list[dict[str, str]]:
    """Rows of one model: its cached original and every method run from it by the demo."""
    data_args = demo_data_args(args.size, args.batch, args.seed)
    entry = cached_original(args.cache, name, data_args, steps=args.pretrain_steps, seed=args.seed,
                            progress=args.progress, model_kwargs=args.model_kwargs)
    retrain = None
    if args.retrain_reference:
        retrain = cached_original(args.cache, name, data_args, steps=args.pretrain_steps, seed=args.seed,
                                  progress=args.progress, model_kwargs=args.model_kwargs, retain_only=True)
    out = Path(args.out) / name
    results = run_demo(out, tuple(methods), model=name, size=args.size, seed=args.seed, pretrain_steps=args.pretrain_steps,
                       unlearn_steps=args.unlearn_steps, batch_size=args.batch, original=str(entry / "original"),
                       progress=args.progress, overwrite=True,
                       retrain=None if retrain is None else str(retrain / "original"), method_args=args.method_kwargs)
    timings = json.loads((out / "demo.json").read_text())["timings"]
    pretrain_s = timings["pretrain_s"]
    orig_f, orig_r = results["original"]["forget_holdout"], results["original"]["retain_holdout"]

    def row(label: str, values: dict[str, Any], seconds: float) -> dict[str, str]:
        f, r = values["forget_holdout"], values["retain_holdout"]
        first = label == "original"
        return {"model": name, "method": label, "face-box PSNR (dB)": f"{f['face_psnr']:.2f}",
                "Δ": "" if first else f"{f['face_psnr'] - orig_f['face_psnr']:+.2f}",
                "faces detected (forget)": f"{f['face_detect_rate']:.1%}", "retain PSNR (dB)": f"{r['psnr']:.2f}",
                "Δ ": "" if first else f"{r['psnr'] - orig_r['psnr']:+.2f}",
                "false detections (retain)": f"{r['face_detect_rate']:.1%}",
                "seconds": f"{seconds:.0f}" + (" (pretrain)" if first else ""),
                "share of pretraining": "" if first else f"{seconds / pretrain_s:.0%}"}

    rows = [row("original", results["original"], pretrain_s)]
    rows += [row(m, results["unlearned" if i == 0 else m], timings[f"unlearn_{m}_s"]) for i, m in enumerate(methods)]
    if args.retrain_reference:
        rows.append(row("retrain", results["retrain"], timings["retrain_s"]))
    print(f"{name}: original from {entry}", flush=True)
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row[k] for k in header) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help="registered names (default: every *_small)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward calls")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    quality_args = parser.add_argument_group("--quality: originals from the cache, then the demo's methods")
    quality_args.add_argument("--quality", action="store_true", help="measure restoration and forgetting instead")
    quality_args.add_argument("--methods", nargs="+", default=["encoder_teacher"], help="registered methods")
    quality_args.add_argument("--pretrain-steps", type=int, default=1800)
    quality_args.add_argument("--unlearn-steps", type=int, default=300)
    quality_args.add_argument("--model-kwargs", type=json.loads, default={},
                              help='JSON overrides of every model\'s preset, e.g. \'{"code_restart_every": 100}\'')
    quality_args.add_argument("--method-kwargs", type=json.loads, default={},
                              help="JSON settings replacing a method's defaults, by method, e.g. "
                                   "'{\"encoder_teacher\": {\"retain_alpha\": 2}}'")
    quality_args.add_argument("--retrain-reference", action="store_true", help="add the retrained-from-scratch row")
    quality_args.add_argument("--cache", default="runs/original_cache", help="folder of cached originals")
    quality_args.add_argument("--out", default="runs/bench_families", help="demo runs go to OUT/<model>")
    quality_args.add_argument("--progress", action="store_true", help="show training progress bars")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quality:
        if min(args.size, args.batch, args.pretrain_steps, args.unlearn_steps) < 1:
            parser.error("size, batch, pretrain-steps and unlearn-steps must be positive")
        for method in args.methods:
            METHODS.get(method)  # unknown names fail before any training
        rows = []
        for name in args.models or ["unet_small"]:
            rows += quality(name, args.methods, args)
            print(markdown(rows), flush=True)
        return 0
    if min(args.size, args.batch, args.steps, args.repeats) < 1 or args.warmup < 0:
        parser.error("size, batch, steps and repeats must be positive and warmup non-negative")
    names = args.models or list_models("*_small")
    rows = [bench(name, args.size, args.batch, args.steps, args.warmup, args.repeats, args.seed) for name in names]
    print(f"{args.size}x{args.size} px, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
