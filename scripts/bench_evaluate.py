"""Benchmark `evaluate_models`: generation plus every default metric on synthetic 64×64 survey tiles.

The target is 1,000 tiles (250 per split) scored for two unet_small models (original and unlearned) in under
two minutes on 2 CPU cores. Prints a table of phase timings; with `--markdown BENCHMARKS.md` it also writes
them into that file's `bench_evaluate` section (replacing an earlier one).

    OMP_NUM_THREADS=2 python scripts/bench_evaluate.py --count 1000
    python scripts/bench_evaluate.py --count 40          # a quick check that it runs
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import torch

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.evaluation import compute_metrics, generate
from imgunlearn.evaluation.metric_set import DEFAULT_METRICS
from imgunlearn.evaluation.report import write_report
from imgunlearn.evaluation.tables import write_tables
from imgunlearn.io import atomic_write_text
from imgunlearn.models import create_model

SPLITS = ("forget_train", "forget_holdout", "retain_train", "retain_holdout")
BEGIN, END = "<!-- bench_evaluate:begin -->", "<!-- bench_evaluate:end -->"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=1000, help="tiles in total, split evenly over the four splits")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--model", default="unet_small")
    p.add_argument("--models", type=int, default=2, help="models evaluated side by side")
    p.add_argument("--task", default="inpaint")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--feature", default="stats")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None, help="write the table into this file's bench_evaluate section")
    args = p.parse_args()
    if args.count < 8:
        raise ValueError(f"--count must be at least 8 (two tiles per split), got {args.count}")
    if args.threads:
        torch.set_num_threads(args.threads)

    per_split = args.count // 4
    start = time.perf_counter()
    datamodule = ForgetRetainDataModule(source="synthetic", size=args.size, num_forget=per_split,
                                        num_retain=per_split, num_holdout_forget=per_split,
                                        num_holdout_retain=per_split, task=args.task,
                                        task_args={"ratio": 0.25} if args.task != "restore" else None, seed=args.seed)
    datasets = {s: datamodule.split_dataset(s) for s in SPLITS}
    t_data = time.perf_counter() - start

    torch.manual_seed(args.seed)
    names = ["original", "unlearned", *(f"model_{i}" for i in range(2, args.models))][: args.models]
    models = {name: create_model(args.model).eval() for name in names}

    t0 = time.perf_counter()
    data, outputs = generate(models, datasets, batch_size=args.batch_size, progress=False)
    t_generate = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = compute_metrics(data, outputs, DEFAULT_METRICS, feature=args.feature, batch_size=args.batch_size,
                              progress=False)
    t_metrics = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_tables(tmp, results)
        write_report(tmp, results, data, outputs, {"reference": "original", "feature": args.feature})
    t_report = time.perf_counter() - t0
    total = t_generate + t_metrics + t_report

    tiles = per_split * 4
    rows = [("data (synthetic survey + degradations)", t_data), ("generation", t_generate),
            ("metrics", t_metrics), ("tables, grid, plot, report", t_report), ("evaluation total", total)]
    threads = torch.get_num_threads()
    header = (f"evaluate_models phases: {tiles} tiles of {args.size}x{args.size}, {args.models} x {args.model}, "
              f"task {args.task}, feature {args.feature}, batch {args.batch_size}, {threads} torch threads, "
              f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    table = [header, "", "| phase | seconds | ms / tile / model |", "|---|---:|---:|"]
    for name, seconds in rows:
        table.append(f"| {name} | {seconds:.2f} | {1000 * seconds / tiles / args.models:.2f} |")
    text = "\n".join(table)
    print(text)
    print(f"target: evaluation total < 120 s at 1000 tiles -> {'met' if total < 120 or tiles < 1000 else 'MISSED'}"
          + ("" if tiles >= 1000 else f" (only {tiles} tiles measured)"))
    if args.markdown:
        write_section(Path(args.markdown), text)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the bench_evaluate section of a Markdown file, atomically."""
    old = path.read_text() if path.is_file() else ""
    section = f"{BEGIN}\n## Evaluation\n\nCommand: `python scripts/bench_evaluate.py`\n\n{text}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _: section, old) if pattern.search(old) else old.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(path, new.lstrip())


if __name__ == "__main__":
    main()
