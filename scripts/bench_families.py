"""Speed of each I2I model family: pretraining throughput and inference time, as a markdown table.

For every model (default: the `*_small` variants) on random images of `--size` px with a hybrid task mask,
it times `--steps` AdamW steps of the family's `reconstruction_loss` (after `--warmup` untimed steps) and
`--repeats` no-grad `forward` calls (for `diffusion` that is its full few-step DDIM sampling loop).

    OMP_NUM_THREADS=2 python scripts/bench_families.py --size 64 --batch 16 --steps 20
    python scripts/bench_families.py --models unet_tiny mae_tiny --size 32 --steps 2 --warmup 1 --repeats 1
"""

from __future__ import annotations

import argparse
import time

import torch

from imgunlearn.data.tasks import make_task
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
    args = parser.parse_args(argv)
    if min(args.size, args.batch, args.steps, args.repeats) < 1 or args.warmup < 0:
        parser.error("size, batch, steps and repeats must be positive and warmup non-negative")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = args.models or list_models("*_small")
    rows = [bench(name, args.size, args.batch, args.steps, args.warmup, args.repeats, args.seed) for name in names]
    print(f"{args.size}x{args.size} px, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
