"""Run models over forget / retain splits, save their outputs and compute every metric per model and split.

`evaluate_models` generates (batched, any device, with a progress bar), stores each output as uint8, and
scores the stored values; `evaluate_saved` scores the stored values again without regenerating, so the two
give the same numbers. Results are shaped `{ROW: {SPLIT: {metric: value}}}` where the rows are the models
plus two references: `input` (the model input scored as if it were an output: what doing nothing gives)
and `ground_truth` (only the metrics that look at images alone, e.g. how often faces are found at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imgunlearn.evaluation.metric_set import DEFAULT_METRICS, METRICS, applicable, check_metric_names
from imgunlearn.evaluation.storage import (
    data_path,
    load_arrays,
    output_path,
    read_json,
    save_arrays,
    to_float,
    to_uint8,
    write_results,
)
from imgunlearn.metrics.features import (
    Feature,
    FeatureExtractor,
    build_feature_extractor,
    describe_feature,
    sharing,
)
from imgunlearn.models.base import ImageToImageModel

REFERENCE_ROWS = ("ground_truth", "input")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Results = dict[str, dict[str, dict[str, float | None]]]


class NonFiniteOutputError(ValueError):
    """A model produced NaN or infinite values; its outputs are not scored (they would look like forgetting)."""


def _count_non_finite(output: Tensor) -> tuple[int, int]:
    """How many values of `output` are NaN and how many are ±inf."""
    return int(torch.isnan(output).sum()), int(torch.isinf(output).sum())


def _check_names(models: Mapping[str, Any], datasets: Mapping[str, Any]) -> None:
    if not models:
        raise ValueError("no models to evaluate")
    if not datasets:
        raise ValueError("no datasets to evaluate on")
    for name in [*models, *datasets]:
        if not NAME_PATTERN.match(name) or name in (*REFERENCE_ROWS, "data"):
            raise ValueError(f"invalid model or split name {name!r}: use letters, digits, '_', '.', '-', and not "
                             f"{', '.join((*REFERENCE_ROWS, 'data'))}")


def _collect(batch: dict[str, Any], split: str) -> dict[str, Tensor]:
    for key in ("image", "input", "mask"):
        if key not in batch:
            raise ValueError(f"split {split!r} yields no {key!r}; examples need image, input, mask (and forget_mask)")
    image = batch["image"]
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"split {split!r}: images must be [3, H, W], got batch {tuple(image.shape)}")
    forget_mask = batch.get("forget_mask")
    if forget_mask is None:
        forget_mask = torch.zeros_like(batch["mask"])
    index = batch.get("index")
    index = torch.as_tensor(index) if index is not None else torch.full((image.shape[0],), -1)
    return {"image": to_uint8(image), "input": to_uint8(batch["input"]), "mask": batch["mask"] > 0.5,
            "forget_mask": forget_mask > 0.5, "index": index.long()}


@torch.inference_mode()
def generate(models: Mapping[str, ImageToImageModel], datasets: Mapping[str, Dataset], batch_size: int = 32,
             device: str | torch.device = "cpu", num_workers: int = 0,
             progress: bool = True) -> tuple[dict[str, dict[str, Tensor]], dict[str, dict[str, Tensor]]]:
    """Run every model over every split.

    Raises:
        NonFiniteOutputError: A model's outputs on a split contain NaN or inf (named with the counts).

    Returns:
        `(data, outputs)`: per split the uint8 / bool arrays of the examples (see `storage`), and per model
        and split the uint8 outputs `[N, 3, H, W]`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device)
    modes = {name: model.training for name, model in models.items()}
    for model in models.values():
        model.to(device).eval()
    loaders = {s: DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
               for s, ds in datasets.items()}
    data: dict[str, dict[str, Tensor]] = {}
    outputs: dict[str, dict[str, Tensor]] = {m: {} for m in models}
    bar = tqdm(total=sum(len(loader) for loader in loaders.values()), desc="generating", unit="batch",
               disable=not progress)
    try:
        for split, loader in loaders.items():
            parts: list[dict[str, Tensor]] = []
            outs: dict[str, list[Tensor]] = {m: [] for m in models}
            bad = {m: [0, 0, 0] for m in models}  # NaN, inf, values seen
            for batch in loader:
                arrays = _collect(batch, split)
                parts.append(arrays)
                model_input = batch["input"].float().to(device)
                mask = batch["mask"].float().to(device)
                for name, model in models.items():
                    out = model(model_input, mask)
                    if out.shape != model_input.shape:
                        raise ValueError(f"model {name!r} returned {tuple(out.shape)} for input "
                                         f"{tuple(model_input.shape)}")
                    nan, inf = _count_non_finite(out)
                    bad[name][0] += nan
                    bad[name][1] += inf
                    bad[name][2] += out.numel()
                    outs[name].append(to_uint8(out).cpu())
                bar.update(1)
                bar.set_postfix(split=split)
            if not parts:
                raise ValueError(f"split {split!r} is empty")
            for name, (nan, inf, total) in bad.items():
                if nan or inf:
                    counts = ", ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "inf")) if n)
                    raise NonFiniteOutputError(f"non-finite outputs of {name} on {split}: {counts} (of {total} "
                                               "values); its results would not mean anything, so nothing is scored")
            data[split] = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            for name in models:
                outputs[name][split] = torch.cat(outs[name])
    finally:
        bar.close()
        for name, model in models.items():
            model.train(modes[name])
    return data, outputs


def _resolve_extractors(feature: Feature | None, logits: Feature | None, names: Sequence[str],
                        allow_download: bool) -> tuple[FeatureExtractor | None, FeatureExtractor | None]:
    features = None
    if any(n in ("fid", "kid", "embedding_cosine") for n in names):
        if feature is None:
            raise ValueError("fid / kid / embedding_cosine need a feature extractor; pass feature=")
        features = build_feature_extractor(feature, "features", allow_download)
    logit_extractor = None
    if "inception_score" in names:
        if logits is None:
            raise ValueError("inception_score needs a logits extractor; pass logits= ('inception' or a classifier)")
        logit_extractor = build_feature_extractor(logits, "logits", allow_download)
    return features, logit_extractor


@torch.no_grad()
def compute_metrics(data: Mapping[str, Mapping[str, Tensor]], outputs: Mapping[str, Mapping[str, Tensor]],
                    metrics: Sequence[str] = DEFAULT_METRICS, feature: Feature | None = "stats",
                    logits: Feature | None = None, batch_size: int = 64, device: str | torch.device = "cpu",
                    allow_download: bool = False, progress: bool = True) -> Results:
    """Score stored outputs (uint8) against their ground truths, per row (model or reference) and split.

    Args:
        data: Per split the examples' arrays (`generate`'s first result or `storage.load_arrays`).
        outputs: Per model and split the uint8 outputs.
        metrics: Metric names (see `metric_set`); each is computed where it applies.
        feature: Extractor for FID / KID / embedding cosine.
        logits: Extractor for the Inception Score.
        batch_size: Images per metric update.
        device: Where metrics run.
        allow_download: Let named extractors download missing weights.
        progress: Show a progress bar.
    """
    names = check_metric_names(list(metrics))
    features, logit_extractor = _resolve_extractors(feature, logits, names, allow_download)
    device = torch.device(device)
    rows = {"ground_truth": {s: d["image"] for s, d in data.items()},
            "input": {s: d["input"] for s, d in data.items()}}
    for model, per_split in outputs.items():
        missing = set(data) - set(per_split)
        if missing:
            raise ValueError(f"model {model!r} has no outputs for splits {sorted(missing)}")
        rows[model] = per_split
    results: Results = {row: {} for row in rows}
    bar = tqdm(total=sum(d["image"].shape[0] for d in data.values()), desc="scoring", unit="image",
               disable=not progress)
    for split, d in data.items():
        has_mask, has_region, n = bool(d["mask"].any()), bool(d["forget_mask"].any()), d["image"].shape[0]
        built = {row: {m: METRICS[m].build(features, logit_extractor).to(device) for m in names
                       if applicable(m, has_mask, has_region, n, row == "ground_truth")} for row in rows}
        for start in range(0, n, batch_size):  # each ground-truth batch is loaded (and embedded) once for all rows
            end = start + batch_size
            target = to_float(d["image"][start:end]).to(device)
            mask = d["mask"][start:end].float().to(device)
            forget_mask = d["forget_mask"][start:end].float().to(device)
            with sharing(features, logit_extractor):  # each tensor is embedded once for all metrics
                for row, per_split in rows.items():
                    preds = target if row == "ground_truth" else to_float(per_split[split][start:end]).to(device)
                    for metric in built[row].values():
                        metric.update(preds, target, mask=mask, forget_mask=forget_mask)
            bar.update(target.shape[0])
        for row in rows:
            results[row][split] = {m: float(metric.compute()) for m, metric in built[row].items()}
    bar.close()
    return results


def evaluate_models(models: Mapping[str, ImageToImageModel], datasets: Mapping[str, Dataset],
                    metrics: Sequence[str] | None = None, batch_size: int = 32, device: str | torch.device = "cpu",
                    output_dir: str | Path | None = None, save_outputs: bool = True, feature: Feature | None = "stats",
                    logits: Feature | None = None, reference: str = "original", allow_download: bool = False,
                    report: bool = True, info: Mapping[str, Any] | None = None, num_workers: int = 0,
                    progress: bool = True) -> Results:
    """Generate with every model on every split, score the outputs and (with `output_dir`) write the results.

    Args:
        models: Name -> model (e.g. `{"original": ..., "unlearned": ...}`); moved to `device`, put back in
            their former train / eval mode afterwards.
        datasets: Split name -> dataset yielding `{"image", "input", "mask", "forget_mask", "index"}`.
        metrics: Metric names (default `metric_set.DEFAULT_METRICS`, plus `inception_score` when `logits` or
            `feature="inception"` is given).
        batch_size: Images per generation batch (and metric update).
        device: Where generation and metrics run.
        output_dir: Folder for `metrics.json`, `metrics.csv`, `metrics.md`, the saved outputs, the pictures
            and `report.md`; nothing is written without it.
        save_outputs: Keep the generated images (uint8 `.npz`) so `evaluate_saved` can rescore them.
        feature: Extractor for FID / KID / embedding cosine (default the offline `"stats"`).
        logits: Extractor for the Inception Score.
        reference: The row the tables compute deltas against (the model before unlearning).
        allow_download: Let named extractors download missing weights.
        report: Write the grid, the trade-off plot and `report.md` too.
        info: Extra facts for the report and `evaluation.json` (task, checkpoint paths, seed, ...).
        num_workers: DataLoader workers.
        progress: Show progress bars.

    Returns:
        `{ROW: {SPLIT: {metric: value}}}` with the models and the `input` / `ground_truth` references.
    """
    _check_names(models, datasets)
    if logits is None and feature == "inception":
        logits = "inception"
    names = list(metrics) if metrics is not None else [*DEFAULT_METRICS, *(["inception_score"] if logits else [])]
    check_metric_names(names)
    _resolve_extractors(feature, logits, names, allow_download)  # fail before the slow part
    data, outputs = generate(models, datasets, batch_size, device, num_workers, progress)
    results = compute_metrics(data, outputs, names, feature, logits, batch_size, device, allow_download, progress)
    if output_dir is not None:
        output_dir = Path(output_dir)
        if save_outputs:
            for split, arrays in data.items():
                save_arrays(data_path(output_dir, split), arrays)
            for model, per_split in outputs.items():
                for split, out in per_split.items():
                    save_arrays(output_path(output_dir, model, split), {"output": out})
        config = {"models": list(models), "splits": list(datasets), "metrics": names,
                  "feature": _feature_name(feature), "logits": _feature_name(logits),
                  "feature_description": _describe(feature), "reference": reference,
                  "batch_size": batch_size, "saved_outputs": save_outputs, "info": dict(info or {})}
        write_results(output_dir / "evaluation.json", config)
        _write_results(output_dir, results, data, outputs, config, report)
    return results


def evaluate_saved(output_dir: str | Path, metrics: Sequence[str] | None = None, feature: Feature | None = None,
                   logits: Feature | None = None, batch_size: int | None = None, device: str | torch.device = "cpu",
                   allow_download: bool = False, report: bool = True, progress: bool = True) -> Results:
    """Rescore the outputs `evaluate_models` saved in `output_dir` and rewrite its tables and report.

    Without arguments it uses the recorded metrics and extractors; an extractor recorded as a user module
    (not a name or a file) must be passed again.
    """
    output_dir = Path(output_dir)
    config = read_json(output_dir / "evaluation.json")
    if not config.get("saved_outputs", False):
        raise ValueError(f"{output_dir} was evaluated with save_outputs=False; there is nothing to rescore")
    names = list(metrics) if metrics is not None else config["metrics"]
    feature = feature if feature is not None else _recorded(config["feature"], "feature")
    logits = logits if logits is not None else _recorded(config["logits"], "logits")
    data = {s: load_arrays(data_path(output_dir, s)) for s in config["splits"]}
    outputs = {m: {s: load_arrays(output_path(output_dir, m, s))["output"] for s in config["splits"]}
               for m in config["models"]}
    results = compute_metrics(data, outputs, names, feature, logits, batch_size or config["batch_size"], device,
                              allow_download, progress)
    config = {**config, "metrics": names, "feature": _feature_name(feature), "logits": _feature_name(logits)}
    write_results(output_dir / "evaluation.json", config)
    _write_results(output_dir, results, data, outputs, config, report)
    return results


def _feature_name(feature: Feature | None) -> str | None:
    if feature is None or isinstance(feature, str):
        return feature
    if isinstance(feature, torch.nn.Module):
        return f"module:{getattr(feature, 'name', type(feature).__name__)}"
    return str(feature)


def _describe(feature: Feature | None) -> str | None:
    if feature is None:
        return None
    if isinstance(feature, FeatureExtractor):
        return describe_feature(feature)
    if isinstance(feature, torch.nn.Module):
        return describe_feature(type(feature).__name__)
    return describe_feature(feature if isinstance(feature, str) and "/" not in feature else Path(feature).name)


def _recorded(name: str | None, what: str) -> Feature | None:
    if name is not None and name.startswith("module:"):
        raise ValueError(f"the {what} extractor was a user module ({name[7:]}); pass it again as {what}=")
    return name


def _write_results(output_dir: Path, results: Results, data: Mapping[str, Mapping[str, Tensor]],
                   outputs: Mapping[str, Mapping[str, Tensor]], config: Mapping[str, Any], report: bool) -> None:
    from imgunlearn.evaluation.report import write_report
    from imgunlearn.evaluation.tables import write_tables

    write_results(output_dir / "metrics.json", results)
    write_tables(output_dir, results, config["reference"])
    if report:
        write_report(output_dir, results, data, outputs, config)
