"""Speed of the challenge scorer: seconds per forget example, fast counting scorer vs the spec transcription.

Synthetic confidence pools (per-example offsets, the unlearned pool shifted and wider than the retrained one)
are scored by `imgunlearn.challenge.scoring.per_example_epsilons` and, on the first few examples only, by the
test oracle (`tests/challenge_oracle.py`, which compares every model with every threshold). The two must agree;
the script prints a markdown table and exits non-zero if they do not.

    OMP_NUM_THREADS=1 python scripts/bench_scorer.py --n-models 512 --examples 100 --oracle-examples 3
    OMP_NUM_THREADS=1 python scripts/bench_scorer.py --n-models 64 --examples 10 --oracle-examples 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from imgunlearn.challenge.scoring import per_example_epsilons
from imgunlearn.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from challenge_oracle import oracle_epsilons  # noqa: E402


def make_pools(n_models: int, n_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`[N, n_examples]` unlearned and retrained confidences drawn from `seed`."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 3, size=n_examples)  # [n_examples]
    retrained = rng.normal(0, 1, size=(n_models, n_examples)) + offsets
    unlearned = rng.normal(0.5, 1.3, size=(n_models, n_examples)) + offsets
    return unlearned, retrained


def timed(function, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-models", type=int, default=512, help="pool size N")
    parser.add_argument("--examples", type=int, default=100, help="forget examples scored by the fast scorer")
    parser.add_argument("--oracle-examples", type=int, default=3, help="of those, how many the oracle scores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.n_models < 1 or args.examples < 1 or not 0 <= args.oracle_examples <= args.examples:
        parser.error("need n-models >= 1, examples >= 1 and 0 <= oracle-examples <= examples")
    torch.set_num_threads(1)

    unlearned, retrained = make_pools(args.n_models, args.examples, args.seed)
    per_example_epsilons(unlearned[:, :1], retrained[:, :1])  # builds the count table for N once
    fast, fast_seconds = timed(per_example_epsilons, unlearned, retrained)
    rows = [("fast (counting)", args.examples, fast_seconds / args.examples)]
    agree = True
    if args.oracle_examples:
        subset = slice(0, args.oracle_examples)
        oracle, oracle_seconds = timed(oracle_epsilons, unlearned[:, subset], retrained[:, subset])
        rows.append(("oracle (every model x every threshold)", args.oracle_examples, oracle_seconds / len(oracle)))
        max_diff = float(np.abs(fast[subset] - oracle).max())
        agree = max_diff <= 1e-4

    lines = [
        f"Challenge scorer, N = {args.n_models}, one process, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}",
        "",
        "| scorer | examples | s / example |",
        "|---|---:|---:|",
        *(f"| {name} | {count} | {seconds:.4f} |" for name, count, seconds in rows),
    ]
    if args.oracle_examples:
        lines += ["", f"max |fast - oracle| epsilon over {args.oracle_examples} examples: {max_diff:.2e}"]
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.output is not None:
        atomic_write_text(args.output, table)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
