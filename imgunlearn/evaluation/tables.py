"""Tables of an evaluation: `metrics.csv` and `metrics.md`, one row per split and metric.

Columns: the goal on that split (which direction is good), the references (`ground_truth`, `input`), the
reference model (default `original`), every other model, and each other model's change against the
reference model (`Δ unlearned` = unlearned − original).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from imgunlearn.evaluation.glossary import METRIC_INFO, SPLIT_INFO, goal
from imgunlearn.io import atomic_write_text

Results = dict[str, dict[str, dict[str, float | None]]]
REFERENCE_ROWS = ("ground_truth", "input")
GOAL_WORDS = {"higher": "higher", "lower": "lower", "same": "≈ original", "": ""}


def row_order(results: Results, reference: str) -> list[str]:
    """References first, then the reference model, then the other models in their given order."""
    first = [r for r in (*REFERENCE_ROWS, reference) if r in results]
    return first + [r for r in results if r not in first]


def compared_models(results: Results, reference: str) -> list[str]:
    """Models whose change against `reference` is reported (none if `reference` was not evaluated)."""
    if reference not in results:
        return []
    return [r for r in results if r not in (*REFERENCE_ROWS, reference)]


def metric_order(results: Results, split: str) -> list[str]:
    """Metrics present on `split`, in the glossary's order (unknown names last, as first seen)."""
    names: list[str] = []
    for per_split in results.values():
        names += [n for n in per_split.get(split, {}) if n not in names]
    known = list(METRIC_INFO)
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), names.index(n)))


def splits_of(results: Results) -> list[str]:
    splits: list[str] = []
    for per_split in results.values():
        splits += [s for s in per_split if s not in splits]
    return splits


def value(results: Results, row: str, split: str, metric: str) -> float | None:
    v = results.get(row, {}).get(split, {}).get(metric)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def delta(results: Results, model: str, reference: str, split: str, metric: str) -> float | None:
    a, b = value(results, model, split, metric), value(results, reference, split, metric)
    return None if a is None or b is None else a - b


def fmt(metric: str, v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    sign = "+" if signed else ""
    if metric.endswith("_rate"):
        return f"{v * 100:{sign}.1f}%"
    if metric.endswith("psnr"):
        return f"{v:{sign}.2f}"
    return f"{v:{sign}.4f}" if abs(v) < 100 else f"{v:{sign}.1f}"


def to_csv(results: Results, reference: str = "original") -> str:
    rows, models = row_order(results, reference), compared_models(results, reference)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "metric", "goal", *rows, *(f"delta_{m}" for m in models)])
    for split in splits_of(results):
        for metric in metric_order(results, split):
            cells = [value(results, r, split, metric) for r in rows]
            deltas = [delta(results, m, reference, split, metric) for m in models]
            writer.writerow([split, metric, goal(metric, split),
                             *("" if c is None else repr(float(c)) for c in (*cells, *deltas))])
    return buffer.getvalue()


def to_markdown(results: Results, reference: str = "original") -> str:
    """One table per split; the goal column says which direction is good for that kind of split."""
    rows, models = row_order(results, reference), compared_models(results, reference)
    headers = ["metric", "goal", *rows, *(f"Δ {m}" for m in models)]
    lines: list[str] = []
    for split in splits_of(results):
        about = SPLIT_INFO.get(split)
        lines += [f"### {split}" + (f" — {about}" if about else ""), ""]
        lines += ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + "|"]
        for metric in metric_order(results, split):
            title = METRIC_INFO[metric].title if metric in METRIC_INFO else metric
            cells = [fmt(metric, value(results, r, split, metric)) for r in rows]
            deltas = [fmt(metric, delta(results, m, reference, split, metric), signed=True) for m in models]
            lines.append("| " + " | ".join([title, GOAL_WORDS[goal(metric, split)], *cells, *deltas]) + " |")
        lines.append("")
    return "\n".join(lines)


def write_tables(output_dir: str | Path, results: Results, reference: str = "original") -> None:
    """Write `metrics.csv` and `metrics.md` into `output_dir`."""
    output_dir = Path(output_dir)
    atomic_write_text(output_dir / "metrics.csv", to_csv(results, reference))
    atomic_write_text(output_dir / "metrics.md", "# Metrics\n\n" + to_markdown(results, reference))
