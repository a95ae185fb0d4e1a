"""Benchmark every classifier unlearning method on the embedded synthetic faces with the small CNN.

Trains the original with `configs/challenge/original_cnn_small.yaml`, then runs every method with its
`configs/challenge/<method>.yaml` hyperparameters (`retrain` uses the original's training recipe), and reports
retain / test / forget accuracy, the two MIA figures and the run time as a share of retraining, as a markdown
table. Also checks the forget-set gap the benchmark relies on: the original must be clearly more accurate on the
forget people than the retrained model.

    OMP_NUM_THREADS=1 python scripts/bench_challenge_methods.py --out bench_challenge_methods.md
    OMP_NUM_THREADS=1 python scripts/bench_challenge_methods.py --num-people 60 --epochs 2   # a quick check
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch
import yaml

from imgunlearn.challenge.data import FaceAgeDataset, make_loaders, split_faces
from imgunlearn.challenge.methods import list_methods, resolve_unlearning
from imgunlearn.challenge.mia import mia_figures
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import accuracy, seeded, train_classifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "challenge"


def parse_args() -> argparse.Namespace:
    original = yaml.safe_load((CONFIGS / "original_cnn_small.yaml").read_text())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-people", type=int, default=original["num_people"])
    p.add_argument("--forget-people", type=int, default=original["forget_people"])
    p.add_argument("--model", default=original["model"])
    p.add_argument("--epochs", type=int, default=original["epochs"])
    p.add_argument("--lr", type=float, default=original["lr"])
    p.add_argument("--weight-decay", type=float, default=original["weight_decay"])
    p.add_argument("--batch-size", type=int, default=original["batch_size"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    p.add_argument("--out", type=Path, help="write the markdown table here")
    return p.parse_args()


def method_hyperparameters(name: str, args: argparse.Namespace) -> dict:
    if name == "retrain":  # the reference is the original's recipe on the retain set
        return {"epochs": args.epochs, "lr": args.lr, "weight_decay": args.weight_decay}
    path = CONFIGS / f"{name}.yaml"
    return yaml.safe_load(path.read_text()).get("hyperparameters", {}) if path.is_file() else {}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    dataset = FaceAgeDataset.from_faces(generate_faces(args.num_people, seed=args.seed))
    splits = split_faces(dataset, args.forget_people, seed=args.seed)
    loaders = make_loaders(splits, args.batch_size, seed=args.seed)
    sizes = {k: len(v) for k, v in splits.indices.items()}
    print(f"data: {len(dataset)} faces, {sizes} ({time.perf_counter() - start:.1f} s)", flush=True)

    original = create_classifier(args.model, num_classes=dataset.num_groups, seed=args.seed)
    start = time.perf_counter()
    train_classifier(original, loaders["train"], loaders["val"], epochs=args.epochs, lr=args.lr,
                     weight_decay=args.weight_decay, seed=args.seed)
    original_seconds = time.perf_counter() - start
    rows = [{"method": "original (no unlearning)", "seconds": original_seconds,
             **evaluate(original, loaders, args.seed), "train": accuracy(original, loaders["train"])}]
    print(f"original: {rows[0]}", flush=True)

    methods = args.methods or list_methods()
    if "retrain" in methods:  # first, so that every other method's time share is known
        methods = ["retrain"] + [m for m in methods if m != "retrain"]
    for name in methods:
        net = copy.deepcopy(original).train()
        method = resolve_unlearning(name, seed=args.seed, **method_hyperparameters(name, args))
        start = time.perf_counter()
        with seeded(args.seed, loaders["retain"], loaders["forget"], loaders["val"]):
            net = method(net, loaders["retain"], loaders["forget"], loaders["val"])
        rows.append({"method": name, "seconds": time.perf_counter() - start, **evaluate(net, loaders, args.seed)})
        print(f"{name}: {rows[-1]}", flush=True)

    retrain = next((r for r in rows if r["method"] == "retrain"), None)
    table = render(rows, retrain["seconds"] if retrain else original_seconds, args, sizes, len(dataset))
    if retrain is not None:
        gap = rows[0]["forget"] - retrain["forget"]
        verdict = "clear" if gap >= 0.15 else "TOO SMALL"
        table += (f"\nForget-set gap (original − retrained forget accuracy): {gap:+.3f} ({verdict}; the benchmark "
                  "needs the original to remember the forget people).\n")
    print(table)
    if args.out:
        args.out.write_text(table)


def evaluate(net: torch.nn.Module, loaders: dict, seed: int) -> dict:
    record = {name: accuracy(net, loaders[name]) for name in ("retain", "test", "forget")}
    record.update(mia_figures(net, loaders["retain"], loaders["forget"], loaders["test"], seed=seed))
    return record


def render(rows: list[dict], retrain_seconds: float, args: argparse.Namespace, sizes: dict, n: int) -> str:
    lines = [
        f"Synthetic faces: {n} images of {args.num_people} people, {args.forget_people} forget people "
        f"({sizes['forget']} images), retain {sizes['retain']}, val {sizes['val']}, test {sizes['test']}; "
        f"model `{args.model}`, original trained {args.epochs} epochs (Adam lr {args.lr:g}, weight decay "
        f"{args.weight_decay:g}); seed {args.seed}; {torch.get_num_threads()} CPU thread(s).",
        "",
        "MIA loss acc: logistic regression forget vs test on the loss (0.5 in the starting kit's framing; here the "
        "test set shares people with the retain set, so the retrained model's value is the reference). "
        "MIA efficacy: share of forget examples an SVC (retain vs test confidence) calls non-members "
        "(the retrained model's value is the target).",
        "",
        "| method | retain acc | test acc | forget acc | MIA loss acc | MIA efficacy | time (s) | time / retrain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["method"] + (f" (train acc {r['train']:.3f})" if "train" in r else "")
        lines.append(f"| {name} | {r['retain']:.3f} | {r['test']:.3f} | {r['forget']:.3f} | "
                     f"{r['mia_loss_accuracy']:.3f} | {r['mia_svc_efficacy']:.3f} | {r['seconds']:.1f} | "
                     f"{r['seconds'] / retrain_seconds:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
