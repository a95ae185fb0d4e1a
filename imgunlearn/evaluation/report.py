"""`report.md`: the pictures, the tables and what every number means, for a reader new to unlearning."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from imgunlearn.evaluation.glossary import METRIC_INFO, ROW_INFO, SPLIT_INFO, describe_task
from imgunlearn.evaluation.grids import save_grid
from imgunlearn.evaluation.plots import save_tradeoff, tradeoff_axes
from imgunlearn.evaluation.tables import Results, compared_models, fmt, row_order, splits_of, to_markdown, value
from imgunlearn.io import atomic_write_text

INTRO = (
    "An image-to-image model takes a damaged or partly hidden image and produces a complete, clean one. "
    "*Unlearning* changes such a model after training so that it can no longer reproduce certain content "
    "(here: the images to forget, or the faces in them) while it keeps working as before on everything else. "
    "This report compares the model before unlearning with the model(s) after it, on images to forget and on "
    "images to keep, including images the unlearning run never saw (\"held-out\"). A good result "
    "changes the numbers a lot on images to forget and hardly at all on images to keep."
)


def _headline(results: Results, reference: str) -> list[str]:
    chosen = tradeoff_axes(results)
    if chosen is None or reference not in results:
        return []
    (f_split, f_metric), (r_split, r_metric) = chosen
    lines = []
    for model in compared_models(results, reference):
        f0, f1 = value(results, reference, f_split, f_metric), value(results, model, f_split, f_metric)
        r0, r1 = value(results, reference, r_split, r_metric), value(results, model, r_split, r_metric)
        if None in (f0, f1, r0, r1):
            continue
        where = "inside the face box" if f_metric == "face_psnr" else "over the whole image"
        text = (f"- **{model}**: on {f_split} ({SPLIT_INFO.get(f_split, 'images to forget')}) the PSNR {where} "
                f"went from {f0:.2f} dB to {f1:.2f} dB ({f1 - f0:+.2f} dB; lower means more forgotten); on "
                f"{r_split} ({SPLIT_INFO.get(r_split, 'images to keep')}) the whole-image PSNR went from {r0:.2f} dB to "
                f"{r1:.2f} dB ({r1 - r0:+.2f} dB; close to 0 or above means quality was kept).")
        d0, d1 = (value(results, row, f_split, "face_detect_rate") for row in (reference, model))
        truth = value(results, "ground_truth", f_split, "face_detect_rate")
        if d0 is not None and d1 is not None:
            text += (f" A face detector finds a face in {fmt('face_detect_rate', d1)} of its outputs there, against "
                     f"{fmt('face_detect_rate', d0)} for the original"
                     + (f" and {fmt('face_detect_rate', truth)} on the true images." if truth is not None else "."))
        lines.append(text)
    return lines


def write_report(output_dir: str | Path, results: Results, data: Mapping[str, Mapping[str, Tensor]],
                 outputs: Mapping[str, Mapping[str, Tensor]], config: Mapping[str, Any]) -> Path:
    """Write `grid.png`, `tradeoff.png` and `report.md` into `output_dir`; returns the report's path."""
    output_dir = Path(output_dir)
    reference = config.get("reference", "original")
    models = [r for r in row_order(results, reference) if r in outputs]
    grid = save_grid(output_dir / "grid.png", data, outputs, models)
    plot = save_tradeoff(output_dir / "tradeoff.png", results, reference)
    info = dict(config.get("info") or {})

    lines = ["# Unlearning evaluation report", "", INTRO, ""]
    headline = _headline(results, reference)
    if headline:
        lines += ["## In short", "", *headline, ""]

    lines += ["## What was evaluated", ""]
    for model in models:
        where = (info.get("checkpoints") or {}).get(model)
        about = ROW_INFO.get(model, "a model after unlearning" if model != reference else ROW_INFO["original"])
        lines.append(f"- `{model}`: {about}" + (f" — `{where}`" if where else ""))
    for row in ("input", "ground_truth"):
        lines.append(f"- `{row}` (reference row): {ROW_INFO[row]}")
    if info.get("task"):
        task = info["task"]
        lines.append(f"- Task: {describe_task(task) if isinstance(task, dict) else task}")
    for split in splits_of(results):
        count = int(data[split]["image"].shape[0]) if split in data else None
        lines.append(f"- Split `{split}`: {SPLIT_INFO.get(split, 'a group of images')}"
                     + (f" ({count} images)" if count is not None else ""))
    if config.get("feature"):
        lines.append(f"- Feature extractor for FID, KID and the embedding cosine: "
                     f"{config.get('feature_description') or config['feature']}")
    for key, val in info.items():
        if key not in ("task", "checkpoints"):
            lines.append(f"- {key}: {val}")
    lines.append("")

    lines += ["## Pictures", ""]
    if grid is not None:
        lines += [f"![input, outputs and ground truth]({grid.name})", "",
                  "Each row is one image. From left to right: what the models were given, what each model made of "
                  "it, and the true image (the red frame marks the content to forget). On images to forget, a "
                  "successful unlearned model no longer brings the framed content back; on images to keep, its "
                  "output should look like the original model's.", ""]
    if plot is not None:
        lines += [f"![retain quality against forget quality]({plot.name})", "",
                  "Each point is one model. Further left means less of the content to forget is reproduced; "
                  "higher means images to keep are reproduced better. The grey square scores the model input itself: "
                  "what doing nothing would give.", ""]

    lines += ["## Numbers", "",
              "The *goal* column says which direction is good for that group of images; the Δ columns give each "
              "unlearned model's value minus the original's. Rows and columns marked – do not apply.", "",
              to_markdown(results, reference), ""]

    names = [m for m in METRIC_INFO if any(m in per for row in results.values() for per in row.values())]
    lines += ["## What each number means", ""]
    lines += [f"- **{METRIC_INFO[m].title}** (`{m}`): {METRIC_INFO[m].sentence}" for m in names]
    lines += ["", "The FID, KID and embedding-cosine values depend on the feature extractor; with an offline "
              "extractor they compare the models in this report with each other, not with numbers published "
              "elsewhere (which use Inception or CLIP networks).", ""]
    path = output_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
