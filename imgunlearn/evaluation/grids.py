"""A picture a person can look at: a few held-out tiles to keep and to forget, each model's output beside them.

Columns: model input, each model's output (the reference model first), ground truth (with the forget
region outlined in red). Rows: tiles to keep, then tiles to forget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from imgunlearn.io import atomic_write_bytes
from imgunlearn.metrics.regions import bounding_box


def pick_split(splits: Sequence[str], kind: str) -> str | None:
    """The held-out split of a kind (`retain` / `forget`) if there is one, else any split of that kind."""
    if f"{kind}_holdout" in splits:
        return f"{kind}_holdout"
    return next((s for s in splits if s.startswith(kind)), None)


def _hwc(image: Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).cpu().numpy()  # [H, W, 3] uint8


def save_grid(path: str | Path, data: Mapping[str, Mapping[str, Tensor]], outputs: Mapping[str, Mapping[str, Tensor]],
              models: Sequence[str] | None = None, rows_per_kind: int = 3) -> Path | None:
    """Write the grid PNG to `path`; None (nothing written) if there is no split to show.

    Args:
        path: The PNG file.
        data: Per split the examples' arrays (uint8 images, bool masks and regions).
        outputs: Per model and split the uint8 outputs.
        models: Column order of the models (default: `outputs`' order).
        rows_per_kind: Tiles shown per kind, spread evenly over the split.
    """
    models = list(models or outputs)
    rows: list[tuple[str, str, int]] = []
    for kind in ("retain", "forget"):
        split = pick_split(list(data), kind)
        if split is None:
            continue
        n = data[split]["image"].shape[0]
        for i in sorted(set(np.linspace(0, n - 1, min(rows_per_kind, n)).round().astype(int).tolist())):
            rows.append((kind, split, i))
    if not rows:
        return None
    columns = ["model input", *models, "ground truth"]
    fig = Figure(figsize=(1.7 * len(columns), 1.8 * len(rows) + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, (kind, split, i) in enumerate(rows):
        tiles = [data[split]["input"][i], *(outputs[m][split][i] for m in models), data[split]["image"][i]]
        for c, tile in enumerate(tiles):
            ax = axes[r][c]
            ax.imshow(_hwc(tile), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        box = bounding_box(data[split]["forget_mask"][i, 0])
        if box is not None:
            top, left, bottom, right = box
            axes[r][-1].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                            edgecolor="red", linewidth=1.2))
        index = int(data[split]["index"][i])
        axes[r][0].set_ylabel(f"{'keep' if kind == 'retain' else 'forget'}\n{split} #{index}", fontsize=8)
    fig.suptitle("Tiles to keep (top) and to forget (bottom): input, each model's output, ground truth", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return path
