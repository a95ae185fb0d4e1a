"""GPU smoke test: every command path that must work on a CUDA device, a few steps each, in a few minutes.

    python scripts/gpu_smoke.py                       # on the first CUDA device: bf16-mixed, DDP (1 process)
    python scripts/gpu_smoke.py --device cpu --model unet_tiny --size 32 --precision 32-true   # same paths on CPU

Paths, one PASS/FAIL line each:
  pretrain             `imgunlearn pretrain` on a `*_small` model under strategy=ddp with one process
  unlearn:<method>     `imgunlearn unlearn` for every registered I2I method from that original
  evaluate             `imgunlearn evaluate` of the original and one unlearned model
  api:throughput       `imgunlearn.pretrain` in process, timed with the device synchronised (img/s)
  challenge:*          `imgunlearn challenge train-original / unlearn / run (retrain, finetune) / score`, N = 2

It prints img/s for pretraining and models/min for the pool, and exits 1 if any path failed. Everything runs
from this checkout's configs/ through the installed `imgunlearn` package, in a temporary directory (or
`--work DIR`, kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


def _imgunlearn(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgunlearn.cli", *args]


class Smoke:
    """Runs the paths, remembering one result line each."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.lines: list[str] = []

    def command(self, name: str, argv: list[str], timeout: float) -> float | None:
        """Run one command line; returns its wall time, or None when it failed."""
        start = time.perf_counter()
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.fail(name, f"timed out after {timeout:.0f} s")
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return self.fail(name, f"exit {result.returncode}: " + " | ".join(tail))
        self.ok(name, f"{seconds:.1f} s")
        return seconds

    def ok(self, name: str, detail: str) -> None:
        self.lines.append(f"PASS {name}  {detail}")
        print(self.lines[-1], flush=True)

    def fail(self, name: str, detail: str) -> None:
        self.failed.append(name)
        self.lines.append(f"FAIL {name}  {detail}")
        print(self.lines[-1], flush=True)
        return None


def trainer_args(args: argparse.Namespace, steps: int) -> list[str]:
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    devices = args.device.split(":")[1] + "," if ":" in args.device else "1"
    return ["--config", str(CONFIGS / "trainer" / "cpu.yaml"), "--trainer.accelerator", accelerator,
            "--trainer.devices", devices, "--trainer.strategy", "ddp", "--trainer.precision", args.precision,
            "--trainer.max_steps", str(steps), "--trainer.enable_progress_bar", "false"]


def data_args(args: argparse.Namespace) -> list[str]:
    n = args.images
    return ["--config", str(CONFIGS / "data" / "synthetic.yaml"), "--data.init_args.size", str(args.size),
            "--data.init_args.num_forget", str(n), "--data.init_args.num_retain", str(4 * n),
            "--data.init_args.num_holdout_forget", str(n), "--data.init_args.num_holdout_retain", str(n),
            "--data.init_args.batch_size", str(args.batch_size)]


def i2i_paths(smoke: Smoke, args: argparse.Namespace, work: Path) -> None:
    from imgunlearn.registry import METHODS

    original = work / "pretrain"
    seconds = smoke.command("pretrain", _imgunlearn(
        "pretrain", "--config", str(CONFIGS / "experiment" / "pretrain.yaml"), *data_args(args),
        *trainer_args(args, args.steps), "--model.init_args.model", args.model, "--out", str(original)),
        args.timeout)
    if seconds is None:
        for method in METHODS.list():
            smoke.fail(f"unlearn:{method}", "no original (pretrain failed)")
        smoke.fail("evaluate", "no original (pretrain failed)")
        return
    unlearned = []
    for method in METHODS.list():
        out = work / f"unlearn_{method}"
        config = CONFIGS / "method" / f"{method}.yaml"
        if not config.is_file():
            smoke.fail(f"unlearn:{method}", f"no method config {config}")
            continue
        if smoke.command(f"unlearn:{method}", _imgunlearn(
                "unlearn", "--config", str(config), *data_args(args), *trainer_args(args, args.steps),
                "--model.init_args.model", str(original / "model"), "--out", str(out)), args.timeout) is not None:
            unlearned.append(out)
    if not unlearned:
        smoke.fail("evaluate", "no unlearned model")
        return
    smoke.command("evaluate", _imgunlearn(
        "evaluate", "--reference-ckpt", str(original / "model"), "--ckpt", str(unlearned[0] / "model"),
        "--data", "synthetic", "--device", args.device, "--splits", "forget_holdout,retain_holdout",
        "--quiet", "--out", str(work / "evaluate")), args.timeout)


def throughput(smoke: Smoke, args: argparse.Namespace) -> None:
    """Pretraining img/s in process: steps after the first, the device synchronised at both ends."""
    import lightning as L
    import torch

    import imgunlearn
    from imgunlearn.data import ForgetRetainDataModule

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def _sync(self) -> None:
            if torch.cuda.is_available() and args.device.startswith("cuda"):
                torch.cuda.synchronize()

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if trainer.global_step == 1:
                self._sync()
                self.start = time.perf_counter()

        def on_train_end(self, trainer, module) -> None:
            self._sync()
            self.end = time.perf_counter()

    try:
        data = ForgetRetainDataModule(source="synthetic", size=args.size, num_forget=args.images,
                                      num_retain=4 * args.images, num_holdout_forget=args.images,
                                      num_holdout_retain=args.images, batch_size=args.batch_size)
        clock = Clock()
        accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
        imgunlearn.pretrain(args.model, data, max_steps=args.steps, accelerator=accelerator, devices=1,
                            strategy="ddp", precision=args.precision, progress=False, callbacks=[clock])
        images = (args.steps - 1) * args.batch_size
        smoke.ok("api:throughput", f"{images / max(clock.end - clock.start, 1e-9):.1f} img/s pretraining "
                                   f"({args.model}, {args.size} px, batch {args.batch_size}, {args.precision})")
    except Exception as error:  # a smoke test reports every failure and goes on
        smoke.fail("api:throughput", f"{type(error).__name__}: {error}")


def challenge_paths(smoke: Smoke, args: argparse.Namespace, work: Path) -> None:
    original, pool = work / "faces", work / "pool"
    device = ["--device", args.device]
    if smoke.command("challenge:train-original", _imgunlearn(
            "challenge", "train-original", "--synthetic", "--num_people", "40", "--image_size", "16",
            "--forget_people", "4", "--model", "cnn_small", "--epochs", "2", "--lr", "3e-3", *device,
            "--out", str(original)), args.timeout) is None:
        for name in ("unlearn", "run:retrain", "run:finetune", "score"):
            smoke.fail(f"challenge:{name}", "no original (train-original failed)")
        return
    smoke.command("challenge:unlearn", _imgunlearn(
        "challenge", "unlearn", "--method", "finetune", "--original", str(original), *device,
        "--out", str(work / "faces_finetune")), args.timeout)
    pool_seconds = 0.0
    for method in ("retrain", "finetune"):
        seconds = smoke.command(f"challenge:run:{method}", _imgunlearn(
            "challenge", "run", "--method", method, "--n_models", "2", "--original", str(original), *device,
            "--no_progress", "--out", str(pool)), args.timeout)
        pool_seconds += seconds or float("nan")
    seconds = smoke.command("challenge:score", _imgunlearn("challenge", "score", "--pool", str(pool)), args.timeout)
    if seconds is not None:
        models = 2 * 2 + 2  # retrained reference pool needs 2N members, the method N
        smoke.ok("challenge:pool-rate", f"{models / (pool_seconds / 60):.1f} models/min (train + evaluate)")
        scores = json.loads((pool / "score.json").read_text()) if (pool / "score.json").is_file() else {}
        if not scores:
            smoke.fail("challenge:score-file", f"{pool / 'score.json'} missing or empty")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    parser.add_argument("--precision", default=None, help="Lightning precision (default: bf16-mixed on CUDA, "
                                                          "32-true on CPU)")
    parser.add_argument("--model", default="unet_small", help="registered I2I model (default: unet_small)")
    parser.add_argument("--size", type=int, default=64, help="tile side (default: 64)")
    parser.add_argument("--images", type=int, default=32, help="forget tiles (retain: 4x) (default: 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="steps per pretraining / unlearning run")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    parser.add_argument("--work", default=None, help="working directory (kept); default: a temporary one")
    parser.add_argument("--skip-challenge", action="store_true")
    parser.add_argument("--skip-i2i", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"FAIL setup  --device {args.device}: no CUDA device visible", flush=True)
            return 1
    args.precision = args.precision or ("bf16-mixed" if args.device.startswith("cuda") else "32-true")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="imgunlearn-smoke-"))
    smoke = Smoke()
    start = time.perf_counter()
    try:
        if not args.skip_i2i:
            i2i_paths(smoke, args, work)
            throughput(smoke, args)
        if not args.skip_challenge:
            challenge_paths(smoke, args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(smoke.lines) - len(smoke.failed)} passed, {len(smoke.failed)} failed "
          f"in {time.perf_counter() - start:.0f} s on {args.device}")
    return 1 if smoke.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
