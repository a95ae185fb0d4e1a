"""Benchmark the I2I unlearning methods and model families on the embedded survey demo.

For each model it runs the demo once (one pretraining, then every method from the same original) and prints
one markdown row per (model, method): held-out face-box PSNR change, face detections on forget outputs,
retain PSNR change, false detections on retain outputs, unlearning time and its share of pretraining, and
pretraining / unlearning throughput.

    python scripts/bench_i2i.py                                   # unet_small, every method
    python scripts/bench_i2i.py --models unet_small,vqgan_small,mae_small,diffusion_small \
        --methods encoder_teacher,noisy_label --markdown bench_families.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imgunlearn.demo import run_demo
from imgunlearn.methods import METHODS

PRETRAIN_STEPS = {"unet_small": 1800, "mae_small": 1800, "vqgan_small": 600, "diffusion_small": 600}
"""The demo's 1800 steps for the fast families; the slower VQ-GAN and diffusion U-Net get fewer, so a family run
stays within minutes on 2 cores."""


def rows_for(model: str, out: Path, methods: tuple[str, ...], unlearn_steps: int, batch_size: int) -> list[str]:
    results = run_demo(out, methods, model=model, pretrain_steps=PRETRAIN_STEPS.get(model, 1800),
                       unlearn_steps=unlearn_steps, batch_size=batch_size, progress=False)
    demo = json.loads((out / "demo.json").read_text())
    t = demo["timings"]
    pretrain_ips = demo["pretrain_steps"] * batch_size / t["pretrain_s"]
    orig = results["original"]
    rows = [f"| {model} | original | {orig['forget_holdout']['face_psnr']:.2f} | | "
            f"{orig['forget_holdout']['face_detect_rate']:.1%} | {orig['retain_holdout']['psnr']:.2f} | | "
            f"{orig['retain_holdout']['face_detect_rate']:.1%} | {t['pretrain_s']:.0f} (pretrain) | | "
            f"{pretrain_ips:.0f} | |"]
    for i, name in enumerate(methods):
        row = results["unlearned" if i == 0 else name]
        f, r = row["forget_holdout"], row["retain_holdout"]
        seconds = t[f"unlearn_{name}_s"]
        unlearn_ips = unlearn_steps * 2 * batch_size / seconds  # a step sees a forget and a retain batch
        rows.append(
            f"| {model} | {name} | {f['face_psnr']:.2f} | {f['face_psnr'] - orig['forget_holdout']['face_psnr']:+.2f} | "
            f"{f['face_detect_rate']:.1%} | {r['psnr']:.2f} | {r['psnr'] - orig['retain_holdout']['psnr']:+.2f} | "
            f"{r['face_detect_rate']:.1%} | {seconds:.0f} | {seconds / t['pretrain_s']:.0%} | | {unlearn_ips:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="unet_small")
    parser.add_argument("--methods", default=",".join(["noisy_label", "encoder_teacher", "max_loss", "retain_label",
                                                       "random_encoder", "finetune"]))
    parser.add_argument("--unlearn-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="runs/bench_i2i")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    methods = tuple(m for m in args.methods.split(",") if m)
    for m in methods:
        METHODS.get(m)
    lines = ["| model | method | face-box PSNR (dB) | Δ | faces detected (forget) | retain PSNR (dB) | Δ | "
             "false detections (retain) | seconds | share of pretraining | pretrain img/s | unlearn img/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in args.models.split(","):
        lines += rows_for(model, Path(args.out) / model, methods, args.unlearn_steps, args.batch_size)
        print("\n".join(lines), flush=True)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
