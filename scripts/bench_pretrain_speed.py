"""Pretraining speed of the demo's original (`unet_small`, 64 px restoration, batch 16) in steps per second.

    python scripts/bench_pretrain_speed.py --steps 300
    PYTHONPATH=/path/to/other/checkout python scripts/bench_pretrain_speed.py --steps 300   # the same on other code

Run both, one after the other, on one machine to compare two versions of the code: machines of one kind differ
by several times in speed, so only figures from one machine and one session compare.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

from imgunlearn.api import pretrain
from imgunlearn.data.datamodule import ForgetRetainDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps (after 20 untimed ones)")
    parser.add_argument("--model", default="unet_small")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    data = ForgetRetainDataModule(source="synthetic", size=64, num_forget=200, num_retain=800, num_holdout_forget=100,
                                  num_holdout_retain=100, task="restore", task_args={"noise_std": 0.1, "downsample": 1},
                                  batch_size=16, seed=0)
    data.setup("fit")
    pretrain(args.model, data, max_steps=20, accelerator="cpu", progress=False)  # start-up and caches, untimed
    start = time.perf_counter()
    pretrain(args.model, data, max_steps=args.steps, accelerator="cpu", progress=False)
    print(f"{args.model}: {args.steps / (time.perf_counter() - start):.2f} steps/s")


if __name__ == "__main__":
    main()
