"""One unlearning run from a saved original on the demo data, scored on held-out tiles: for tuning a method.

Prints one line: seconds, held-out face-box PSNR change, face detections on forget outputs, retain PSNR
change and false detections on retain outputs, all against the original.

    python scripts/tune_unlearning.py runs/demo/original noisy_label 300 \
        '{"lr": 3e-4, "region": "box", "forget_target": "flat", "forget_alpha": 2.0, "retain_alpha": 16.0}'
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings

from imgunlearn.api import load_task, unlearn
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.evaluation import evaluate_models
from imgunlearn.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original", help="a saved original model directory (e.g. runs/demo/original)")
    parser.add_argument("method")
    parser.add_argument("steps", type=int)
    parser.add_argument("method_args", nargs="?", default="{}", help="JSON settings of the method")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    original, task = load_model(args.original), load_task(args.original)
    method_args = json.loads(args.method_args)
    data = ForgetRetainDataModule(source="synthetic", task=task, batch_size=args.batch_size, seed=args.seed)
    data.setup("fit")
    start = time.perf_counter()
    model = unlearn(original, data, method=args.method, max_steps=args.steps, progress=False, seed=args.seed,
                    **method_args)
    seconds = time.perf_counter() - start
    splits = {s: data.split_dataset(s) for s in ("forget_holdout", "retain_holdout")}
    res = evaluate_models({"original": original, "unlearned": model}, splits, progress=False,
                          metrics=["psnr", "face_psnr", "face_detect_rate"])
    o, u = res["original"], res["unlearned"]
    print(f"{args.method} {args.steps} steps {method_args}: {seconds:.0f} s | face box "
          f"{u['forget_holdout']['face_psnr'] - o['forget_holdout']['face_psnr']:+.2f} dB | detected "
          f"{u['forget_holdout']['face_detect_rate']:.0%} | retain {u['retain_holdout']['psnr'] - o['retain_holdout']['psnr']:+.2f} dB"
          f" | retain false detections {u['retain_holdout']['face_detect_rate']:.0%}")


if __name__ == "__main__":
    main()
