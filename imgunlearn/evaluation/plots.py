"""Retain quality against forget quality for every evaluated model, as one scatter plot."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from imgunlearn.evaluation.grids import pick_split
from imgunlearn.evaluation.tables import Results, splits_of, value
from imgunlearn.io import atomic_write_bytes


def tradeoff_axes(results: Results) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """`((forget_split, forget_metric), (retain_split, retain_metric))` to plot, or None if a kind is missing.

    Forget quality is the face-box PSNR where the forget split has regions, else the whole-image PSNR;
    retain quality is the whole-image PSNR.
    """
    splits = splits_of(results)
    forget, retain = pick_split(splits, "forget"), pick_split(splits, "retain")
    if forget is None or retain is None:
        return None
    has_face = any(value(results, row, forget, "face_psnr") is not None for row in results)
    return (forget, "face_psnr" if has_face else "psnr"), (retain, "psnr")


def save_tradeoff(path: str | Path, results: Results, reference: str = "original") -> Path | None:
    """Write the scatter plot PNG; None (nothing written) without both a forget and a retain split."""
    chosen = tradeoff_axes(results)
    if chosen is None:
        return None
    (f_split, f_metric), (r_split, r_metric) = chosen
    fig = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for row in results:
        x, y = value(results, row, f_split, f_metric), value(results, row, r_split, r_metric)
        if x is None or y is None:
            continue
        style = {"input": ("grey", "s"), reference: ("tab:blue", "o")}.get(row, ("tab:red", "D"))
        ax.scatter([x], [y], color=style[0], marker=style[1], s=50, zorder=3)
        ax.annotate(row, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    where = "face box" if f_metric == "face_psnr" else "whole image"
    ax.set_xlabel(f"forget: PSNR in the {where} on {f_split} (dB)\nlower = more forgotten")
    ax.set_ylabel(f"keep: PSNR on {r_split} (dB)\nhigher = better kept")
    ax.set_title("What each model keeps against what it forgets (best: top left)", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path
