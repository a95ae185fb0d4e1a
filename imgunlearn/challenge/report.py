"""The score report of a pool directory: `report.md` and its figures in `report/`.

For every scored row it draws the histogram of per-example ε and the confidence distributions of a few
forget examples (unlearned vs retrained pool), and writes one table comparing every row scored under the
pool: methods first, then the two references, "original" (no unlearning) and "retrain" (the ceiling).
Figures are drawn with matplotlib's object API (Agg canvas), so no display and no global backend switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from imgunlearn.challenge.pool.store import ORIGINAL, RETRAIN_METHOD, TIME_CUTOFF, PoolMembers, method_slug
from imgunlearn.io import atomic_write_bytes

REPORT_NAME = "report.md"
FIGURE_DIR = "report"
N_EXAMPLES = 4

REFERENCE_NOTES = {
    ORIGINAL: (
        "**original (no unlearning)**: the original model evaluated once and replicated N times. A deterministic "
        "method that returns the original unchanged produces exactly these N identical models, so this is what "
        "the challenge would measure for it (training N originals instead would score a different question: how "
        "visible the forget set is to training, not what one submitted method does). A constant pool makes "
        "every per-example ε hit the peaky-distribution rule (ε = 50), so its forget score is 0 by construction; "
        "its accuracy columns show the forget-set advantage unlearning has to remove."
    ),
    RETRAIN_METHOD: (
        "**retrain (ceiling)**: retrained models N..2N-1, independent of the reference pool 0..N-1, scored as "
        "if they were unlearned. Two pools from the same distribution still do not score 1 (the score is a "
        "maximum over many thresholds of noisy rates), so this is the practical ceiling at this N; it takes as "
        "long as retraining and so fails the time cutoff by design."
    ),
}


def _fmt(value: float, digits: int = 4) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"


def _pair(score: Mapping[str, Any], key: str) -> str:
    return f"{score[key]['unlearned']:.1f} / {score[key]['retrained']:.1f}"


def _label(name: str) -> str:
    return {ORIGINAL: "original (no unlearning)", RETRAIN_METHOD: "retrain (ceiling)"}.get(name, f"`{name}`")


def _klom(score: Mapping[str, Any], split: str) -> str:
    entry = (score.get("klom") or {}).get(split)
    return "–" if entry is None else f"{entry['mean']:.2f} / {entry['p95']:.2f}"


def score_table(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table of every row: methods by final score (best first), then the two references."""
    methods = sorted((n for n in scores if n not in REFERENCE_NOTES), key=lambda n: -scores[n]["final_score"])
    order = methods + [n for n in (ORIGINAL, RETRAIN_METHOD) if n in scores]
    ceiling = scores[RETRAIN_METHOD]["forget_score"] if RETRAIN_METHOD in scores else float("nan")
    lines = [
        "| method | N | forget score | × retrain | final score | median ε | retain acc % (U / R) | test acc % (U / R) "
        "| forget acc % (U / R) | KLoM forget | KLoM retain | KLoM test | ToW "
        f"| time ratio | ≤ {TIME_CUTOFF} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for name in order:
        s = scores[name]
        lines.append(
            f"| {_label(name)} | {s['n_models']} | {_fmt(s['forget_score'])} "
            f"| {_fmt(s['forget_score'] / ceiling if ceiling > 0 else float('nan'), 2)} | {_fmt(s['final_score'])} "
            f"| {_fmt(s['epsilon_median'], 2)} | {_pair(s, 'retain_acc')} | {_pair(s, 'test_acc')} "
            f"| {_pair(s, 'forget_acc')} | {_klom(s, 'forget')} | {_klom(s, 'retain')} | {_klom(s, 'test')} "
            f"| {_fmt(s.get('tow', float('nan')), 3)} "
            f"| {_fmt(s['time_ratio'], 3)} | {'yes' if s['passes_time_cutoff'] else 'no'} |"
        )
    return "\n".join(lines)


def _save(figure: Figure, path: Path) -> None:
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=100), fsync=True)


def plot_epsilons(epsilons: np.ndarray, title: str, path: Path) -> None:
    """Histogram of per-example ε (ε = 50, the cap, drawn as its own bar at the right)."""
    figure = Figure(figsize=(5, 3))
    axis = figure.add_subplot()
    finite = epsilons[epsilons < 50]
    top = max(float(finite.max()) if finite.size else 1.0, 1.0)
    axis.hist(finite, bins=np.linspace(0, top, 31), color="tab:blue", label="ε < 50")
    capped = int((epsilons >= 50).sum())
    if capped:
        axis.bar([top * 1.08], [capped], width=top * 0.05, color="tab:red", label=f"ε = 50 ({capped})")
    axis.set(xlabel="per-example ε", ylabel="forget examples", title=title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def pick_examples(epsilons: np.ndarray, count: int = N_EXAMPLES) -> list[int]:
    """Forget examples spread over the ε range: lowest, evenly spaced quantiles, highest."""
    order = np.argsort(epsilons, kind="stable")
    positions = np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int))
    return [int(order[p]) for p in positions]


def plot_confidences(unlearned: PoolMembers, retrained: PoolMembers, epsilons: np.ndarray, title: str,
                     path: Path) -> None:
    """Confidence distributions of a few forget examples, unlearned vs retrained pool."""
    examples = pick_examples(epsilons)
    figure = Figure(figsize=(3 * len(examples), 2.8))
    for column, example in enumerate(examples):
        axis = figure.add_subplot(1, len(examples), column + 1)
        u, r = unlearned.confidences[:, example], retrained.confidences[:, example]
        low, high = float(min(u.min(), r.min())), float(max(u.max(), r.max()))
        bins = np.linspace(low - 0.5, high + 0.5, 25) if high - low < 1e-9 else np.linspace(low, high, 25)
        axis.hist(r, bins=bins, alpha=0.6, label="retrained", color="tab:green")
        axis.hist(u, bins=bins, alpha=0.6, label="unlearned", color="tab:orange")
        axis.set(title=f"example {example}, ε = {epsilons[example]:.2f}", xlabel="logit-scaled confidence")
        if column == 0:
            axis.set_ylabel("models")
            axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)


def write_report(
    pool: str | Path,
    rows: Mapping[str, tuple[Mapping[str, Any], PoolMembers, PoolMembers]],
    notes: Sequence[str] = (),
) -> Path:
    """Write `report.md` and its figures for scored rows `name -> (score, unlearned pool, retrained pool)`."""
    pool = Path(pool)
    scores = {name: score for name, (score, _, _) in rows.items()}
    parts = ["# Unlearning challenge score", "", f"Pool: `{pool}`", "", score_table(scores), ""]
    parts += [
        "Forget score: mean points over forget examples of the per-example ε buckets; final score: forget score "
        "× retain-accuracy ratio × test-accuracy ratio (unlearned / retrained means). U = unlearned pool, "
        f"R = retrained pool. Time ratio: mean unlearning time / mean retraining time (cutoff {TIME_CUTOFF}). "
        "KLoM (mean / 95th percentile over examples, lower is closer to retraining): per example, the KL "
        "divergence between the binned margins of the unlearned and the retrained models, on the forget set and "
        "on the pool's fixed sample of retain and test examples. ToW: the product over forget, retain and test of "
        "1 − |accuracy difference| (1 = the retrained accuracies exactly).",
        "",
    ]
    parts += [REFERENCE_NOTES[name] + "\n" for name in (ORIGINAL, RETRAIN_METHOD) if name in rows]
    parts += [f"> {note}\n" for note in notes]
    for name, (score, unlearned, retrained) in rows.items():
        slug = method_slug(name)
        epsilons = np.asarray(score["epsilons"], dtype=np.float64)
        eps_path = pool / FIGURE_DIR / f"epsilon_{slug}.png"
        conf_path = pool / FIGURE_DIR / f"confidences_{slug}.png"
        plot_epsilons(epsilons, f"{name}: per-example ε (N = {score['n_models']})", eps_path)
        plot_confidences(unlearned, retrained, epsilons, name, conf_path)
        parts += [
            f"## {_label(name)}", "",
            f"Forget score {_fmt(score['forget_score'])}, final score {_fmt(score['final_score'])}, "
            f"median ε {_fmt(score['epsilon_median'], 2)} over {score['n_forget']} forget examples.", "",
            f"![per-example epsilon]({FIGURE_DIR}/{eps_path.name})", "",
            f"![confidence distributions]({FIGURE_DIR}/{conf_path.name})", "",
        ]
    text = "\n".join(parts).encode()
    path = pool / REPORT_NAME
    atomic_write_bytes(path, text, fsync=True)
    return path
