"""Benchmark: the challenge score of every registered classifier unlearning method on the embedded setting.

Trains the original (embedded synthetic faces, `cnn_small`, see `pool_commands.EMBEDDED`), builds the
retrained pool and its independent "retrain" reference half, runs N unlearned models per method, scores them
all under one pool directory and prints a markdown table (also written to OUT/bench_pool.md) with the two
reference rows and the wall time of every phase. Everything resumes: rerunning skips finished models.

    python scripts/bench_pool.py --n-models 32 --jobs 2                       # the full laptop benchmark
    python scripts/bench_pool.py --n-models 4 --people 60 --epochs 3          # a quick check that it runs
    python scripts/bench_pool.py --compare-training --n-models 0              # training throughput only
    python scripts/bench_pool.py --compare-jobs 8 --n-models 0                # 1 process vs 2 processes
    python scripts/bench_pool.py --n-models 32 --tune reset_finetune,conv_transpose_finetune --tune-trials 12

`--tune` runs `imgunlearn challenge tune` for each named method (one shared tuning pool in OUT/tune/pool, on a
forget set of other people; `--tune-n-models`, `--tune-trials`), then its `best.yaml` at N on the reported forget
set, filed as `<method>_tuned` beside the default row, and adds each study's trials to the output.

`--compare-training` also measures training-step throughput of pool members trained one after another
against several members trained at once with `torch.func` (stacked weights, `vmap`), on the recipe's model.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

from imgunlearn.challenge.pool import score_pool
from imgunlearn.challenge.pool_commands import EMBEDDED, prepare_original, run_main
from imgunlearn.challenge.report import score_table
from imgunlearn.io import atomic_write_text


def compare_training(setting: dict, members: int, steps: int = 10) -> str:
    """Milliseconds per member per training step: one after another vs `members` at once with vmap."""
    from torch.func import functional_call, stack_module_state, vmap

    from imgunlearn.challenge.models import create_classifier

    size = setting["image_size"]
    models = [create_classifier(setting["model"], seed=i) for i in range(members)]
    images = torch.rand(members, setting["batch_size"], 3, size, size) * 255  # [K, B, 3, H, W]
    labels = torch.randint(0, 10, images.shape[:2])  # [K, B]
    optimizers = [torch.optim.Adam(m.parameters(), 1e-3) for m in models]

    def one_by_one() -> None:
        for model, optimizer, x, y in zip(models, optimizers, images, labels, strict=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    skeleton = copy.deepcopy(models[0]).to("meta")
    loss = vmap(lambda p, b, x, y: torch.nn.functional.cross_entropy(functional_call(skeleton, (p, b), (x,)), y))
    stacked_optimizer = torch.optim.Adam(params.values(), 1e-3)

    def at_once() -> None:
        stacked_optimizer.zero_grad()
        loss(params, buffers, images, labels).sum().backward()
        stacked_optimizer.step()

    rows = [f"Training step of `{setting['model']}` at {size}×{size}, batch {images.shape[1]}, "
            f"{torch.get_num_threads()} thread(s), {members} members:", "",
            "| how | ms per member per step |", "|---|---:|"]
    for name, step in (("one after another", one_by_one), (f"{members} at once (torch.func vmap)", at_once)):
        for _ in range(2):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rows.append(f"| {name} | {1000 * (time.perf_counter() - start) / steps / members:.1f} |")
    return "\n".join(rows)


def compare_jobs(original: Path, out: Path, n_models: int, max_jobs: int) -> str:
    """Wall time of a fresh retrained pool (2 x `n_models` models) made by 1 process and by `max_jobs` processes."""
    rows = [f"Retrained pool of {2 * n_models} models, {os.cpu_count()} CPU(s):", "",
            "| processes × threads | wall time (s) |", "|---|---:|"]
    for jobs in sorted({1, max_jobs}):
        start = time.perf_counter()
        argv = ["--method", "retrain", "--n-models", str(n_models), "--original", str(original),
                "--out", str(out / f"jobs{jobs}"), "--jobs", str(jobs), "--no-progress"]
        if run_main(argv) != 0:
            raise RuntimeError(f"retrained pool with {jobs} job(s) failed")
        threads = torch.get_num_threads() if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs)
        rows.append(f"| {jobs} × {threads} | {time.perf_counter() - start:.1f} |")
    return "\n".join(rows)


def tune(method: str, out: Path, args: argparse.Namespace) -> tuple[Path, str, int]:
    """`imgunlearn challenge tune` of `method` against OUT/original (a study holding at least `--tune-trials`
    trials is reused as it is): its best.yaml, its trials as a table and how many there are."""
    from imgunlearn.challenge.tune import main as challenge_tune

    study = out / "tune" / method
    argv = ["--original", str(out / "original"), "--method", method, "--trials", str(args.tune_trials),
            "--n_models", str(args.tune_n_models), "--pool", str(out / "tune" / "pool"), "--out", str(study)]
    if challenge_tune(argv) != 0:
        raise RuntimeError(f"imgunlearn challenge tune {' '.join(argv)} failed")
    summary = json.loads((study / "summary.json").read_text())
    rows = [f"`imgunlearn challenge tune --method {method}` ({summary['trials']} trials, N = {args.tune_n_models}, "
            f"tuning forget set of other people; trial 0 = the shipped settings; chosen: trial "
            f"{summary['best']['trial']}):", "", "| trial | final score | forget score | time ratio | settings |",
            "|---:|---:|---:|---:|---|"]
    with open(study / "trials.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["state"] != "complete":
                rows.append(f"| {row['trial']} | {row['state']} | | | |")
                continue
            settings = {k: row[k] for k in row if k not in ("trial", "state", "value") and row[k] != ""
                        and k not in ("final_score", "forget_score", "time_ratio", "retain_acc", "test_acc",
                                      "forget_acc", "seconds", "constraint", "error")}
            shown = ", ".join(f"{k} {float(v):.3g}" if _number(v) else f"{k} {v}" for k, v in sorted(settings.items()))
            rows.append(f"| {row['trial']} | {float(row['final_score']):.4f} | {float(row['forget_score']):.4f} | "
                        f"{float(row['time_ratio']):.3f} | {shown} |")
    return study / "best.yaml", "\n".join(rows), int(summary["trials"])


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-models", type=int, default=32, help="pool size N (0: skip the pools)")
    parser.add_argument("--out", default="runs/bench_pool", help="working directory (original, pool, cache)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel shard processes per pool run")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every registered one)")
    parser.add_argument("--people", type=int, default=None, help="override the number of synthetic people")
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs")
    parser.add_argument("--tune", default=None, help="comma-separated methods to tune (adds <method>_tuned rows)")
    parser.add_argument("--tune-trials", type=int, default=12, help="trials per tuned method")
    parser.add_argument("--tune-n-models", type=int, default=16, help="pool size N of each tuning trial")
    parser.add_argument("--compare-training", action="store_true", help="also measure vmap ensemble training")
    parser.add_argument("--ensemble-members", type=int, default=4)
    parser.add_argument("--compare-jobs", type=int, default=0, metavar="N",
                        help="also time a fresh retrained pool of 2N models with 1 process and with --jobs processes")
    args = parser.parse_args(argv)

    setting = copy.deepcopy(EMBEDDED)
    if args.people is not None:
        setting["num_people"] = args.people
    if args.epochs is not None:
        setting["epochs"] = args.epochs
    out = Path(args.out)
    sections, timings = [], []
    if args.compare_training:
        sections.append(compare_training(setting, args.ensemble_members))
    if args.n_models > 0:
        from imgunlearn.challenge.methods import list_methods

        methods = args.methods.split(",") if args.methods else [m for m in list_methods() if m != "retrain"]
        start = time.perf_counter()
        if not (out / "original" / "config.json").is_file():
            prepare_original(out / "original", setting)
        timings.append(("original", time.perf_counter() - start))
        common = ["--n-models", str(args.n_models), "--original", str(out / "original"), "--out", str(out / "pool"),
                  "--jobs", str(args.jobs)]
        for method in ["retrain", *methods]:
            start = time.perf_counter()
            if run_main(["--method", method, *common]) != 0:
                print(f"pool run of {method!r} failed", file=sys.stderr)
                return 1
            timings.append((method if method != "retrain" else "retrained pool (2N)", time.perf_counter() - start))
        for method in (args.tune.split(",") if args.tune else []):
            start = time.perf_counter()
            best, trials, count = tune(method, out, args)
            timings.append((f"tuning {method} ({count} trials, N = {args.tune_n_models}; 0 s when run before)",
                            time.perf_counter() - start))
            start = time.perf_counter()
            if run_main(["--config", str(best), *common]) != 0:
                print(f"pool run of tuned {method!r} failed", file=sys.stderr)
                return 1
            timings.append((f"{method}_tuned", time.perf_counter() - start))
            methods.append(f"{method}_tuned")
            sections.append(trials)
        scores = score_pool(out / "pool", methods)
        sections.append(f"Pool of N = {args.n_models} on {setting['num_people']} synthetic people, "
                        f"`{setting['model']}` × {setting['epochs']} epochs, "
                        f"{args.jobs} job(s), {os.cpu_count()} CPU(s):\n\n{score_table(scores)}")
        sections.append("| phase | wall time (s) |\n|---|---:|\n" + "\n".join(f"| {n} | {t:.1f} |" for n, t in timings))
    if args.compare_jobs > 0:
        if not (out / "original" / "config.json").is_file():
            prepare_original(out / "original", setting)
        sections.append(compare_jobs(out / "original", out / "compare_jobs", args.compare_jobs, max(args.jobs, 2)))
    text = "\n\n".join(sections) + "\n"
    print(text)
    atomic_write_text(out / "bench_pool.md", text, fsync=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
