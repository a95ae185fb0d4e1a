"""The paper's protocol table: an original trained for masked completion, evaluated on centred inpainting (1/4 and
1/2 of the side) and outpainting (1/4), with a retrained-on-retain reference, encoder_teacher and noisy_label.

Trains `--model` on the embedded survey with the `hybrid` task (per image a centred box, a random box or the
borders, of 1/4 of the side; the 1/2 box is outside training), trains the same recipe from scratch on the retain set only, unlearns with
both methods, then runs `imgunlearn evaluate --task all` (FID / KID / embedding cosine with the offline `stats`
extractor, PSNR, face-box PSNR and face detection, on held-out forget and retain tiles) and prints one table per
task.

    python scripts/bench_protocol.py --out runs/protocol --pretrain-steps 1800 --unlearn-steps 300
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
from imgunlearn.demo import retrain_on_retain_set
from imgunlearn.pipeline import save

METRICS = "psnr,face_psnr,face_detect_rate,fid,kid,embedding_cosine"
COLUMNS = (("face_psnr", "forget_holdout", "face-box PSNR (forget)", "{:.2f}"),
           ("face_detect_rate", "forget_holdout", "faces detected", "{:.0%}"),
           ("fid", "forget_holdout", "FID (forget)", "{:.2f}"), ("kid", "forget_holdout", "KID (forget)", "{:.4f}"),
           ("embedding_cosine", "forget_holdout", "cosine (forget)", "{:.3f}"),
           ("psnr", "retain_holdout", "PSNR (retain)", "{:.2f}"), ("fid", "retain_holdout", "FID (retain)", "{:.2f}"),
           ("kid", "retain_holdout", "KID (retain)", "{:.4f}"),
           ("embedding_cosine", "retain_holdout", "cosine (retain)", "{:.3f}"))


def table(metrics: dict, rows: list[str]) -> str:
    lines = ["| model | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        values = [metrics[row][split].get(key) for key, split, _, _ in COLUMNS]
        cells = ["–" if v is None else c[3].format(v) for v, c in zip(values, COLUMNS, strict=True)]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="working folder (must not hold an earlier run's eval/)")
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--pretrain-steps", type=int, default=1800)
    parser.add_argument("--unlearn-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    data = ForgetRetainDataModule(source="synthetic", size=64, task="hybrid", task_args={"ratio": 0.25},
                                  batch_size=16, seed=args.seed)
    data.setup("fit")
    seconds = {}
    start = time.perf_counter()
    original = pretrain(args.model, data, max_steps=args.pretrain_steps, progress=False)
    seconds["pretrain"] = time.perf_counter() - start
    save(original, out / "original", data.task)
    start = time.perf_counter()
    save(retrain_on_retain_set(original.config, data, args.pretrain_steps, args.seed, progress=False),
         out / "retrain", data.task)
    seconds["retrain"] = time.perf_counter() - start
    for method in ("encoder_teacher", "noisy_label"):
        start = time.perf_counter()
        model = unlearn(original, data, method=method, max_steps=args.unlearn_steps, progress=False)
        seconds[method] = time.perf_counter() - start
        save(model, out / method, data.task)
    rows = ["original", "retrain", "encoder_teacher", "noisy_label"]
    from imgunlearn.cli import main as cli

    argv = ["evaluate", "--reference-ckpt", str(out / "original"), "--data", "synthetic", "--task", "all",
            "--metrics", METRICS, "--out", str(out / "eval"), "--quiet"]
    for row in rows[1:]:
        argv += ["--ckpt", f"{row}={out / row}"]
    if cli(argv) != 0:
        raise SystemExit(f"imgunlearn {' '.join(argv)} failed")
    sections = [f"{args.model}, hybrid-task pretraining {args.pretrain_steps} steps ({seconds['pretrain']:.0f} s), "
                f"unlearning {args.unlearn_steps} steps (encoder_teacher {seconds['encoder_teacher']:.0f} s, "
                f"noisy_label {seconds['noisy_label']:.0f} s), retrain {seconds['retrain']:.0f} s."]
    for task_dir in sorted(p for p in (out / "eval").iterdir() if (p / "metrics.json").is_file()):
        metrics = json.loads((task_dir / "metrics.json").read_text())
        metrics = metrics.get("results", metrics)
        sections.append(f"**{task_dir.name}**\n\n{table(metrics, rows)}")
    text = "\n\n".join(sections) + "\n"
    (out / "protocol.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
