"""The named metrics an evaluation computes, and when each applies to a split.

Names map to metric instances (one fresh instance per model and split):

- `psnr`, `ssim`, `mse`: whole image; `hidden_*`: the task's hidden pixels (splits with a mask);
  `face_*`: the forget region, e.g. the face box (splits with a region);
- `face_detect_rate`: images with a detected face; `face_leak_rate`: with a detection in the forget region;
- `fid`, `kid`, `embedding_cosine`: on the chosen feature extractor; `inception_score`: on a logits extractor;
- `lpips`: optional, needs torchvision backbone weights on the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torchmetrics import Metric

from imgunlearn.metrics import FID, KID, LPIPS, MSE, PSNR, SSIM, EmbeddingCosine, FaceLeakRate, InceptionScore
from imgunlearn.metrics.features import FeatureExtractor
from imgunlearn.registry import METRICS


@dataclass(frozen=True)
class MetricSpec:
    """How to build one named metric.

    Args:
        build: `build(features, logits)` -> a fresh metric (`features` / `logits` are shared extractors).
        needs: `"mask"` / `"region"` if the split must have hidden pixels / a forget region; else `""`.
        paired: Compares each image with its ground truth (so it is not scored on the ground truth itself).
        min_images: Fewest images the metric can be computed on.
    """

    build: Callable[[FeatureExtractor | None, FeatureExtractor | None], Metric]
    needs: str = ""
    paired: bool = True
    min_images: int = 1


METRICS.update({
    "psnr": MetricSpec(lambda f, lg: PSNR()),
    "ssim": MetricSpec(lambda f, lg: SSIM()),
    "mse": MetricSpec(lambda f, lg: MSE()),
    "hidden_psnr": MetricSpec(lambda f, lg: PSNR(pixels="mask"), needs="mask"),
    "hidden_ssim": MetricSpec(lambda f, lg: SSIM(pixels="mask"), needs="mask"),
    "hidden_mse": MetricSpec(lambda f, lg: MSE(pixels="mask"), needs="mask"),
    "face_psnr": MetricSpec(lambda f, lg: PSNR(pixels="forget"), needs="region"),
    "face_ssim": MetricSpec(lambda f, lg: SSIM(pixels="forget"), needs="region"),
    "face_mse": MetricSpec(lambda f, lg: MSE(pixels="forget"), needs="region"),
    "face_detect_rate": MetricSpec(lambda f, lg: FaceLeakRate(), paired=False),
    "face_leak_rate": MetricSpec(lambda f, lg: FaceLeakRate(in_region=True), needs="region", paired=False),
    "fid": MetricSpec(lambda f, lg: FID(feature=f), min_images=2),
    "kid": MetricSpec(lambda f, lg: KID(feature=f), min_images=2),
    "embedding_cosine": MetricSpec(lambda f, lg: EmbeddingCosine(feature=f)),
    "inception_score": MetricSpec(lambda f, lg: InceptionScore(feature=lg), paired=False),
    "lpips": MetricSpec(lambda f, lg: LPIPS()),
})

DEFAULT_METRICS = ("psnr", "ssim", "mse", "hidden_psnr", "hidden_ssim", "hidden_mse", "face_psnr", "face_ssim",
                   "face_mse", "face_detect_rate", "face_leak_rate", "fid", "kid", "embedding_cosine")
FEATURE_METRICS = ("fid", "kid", "embedding_cosine")


def check_metric_names(names: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics listed twice: {sorted({n for n in names if list(names).count(n) > 1})}")
    return list(names)


def applicable(name: str, has_mask: bool, has_region: bool, num_images: int, is_ground_truth: bool) -> bool:
    """Whether metric `name` is computed for a split with these properties (and for the ground-truth row)."""
    spec = METRICS[name]
    if spec.needs == "mask" and not has_mask or spec.needs == "region" and not has_region:
        return False
    if is_ground_truth and spec.paired:
        return False
    return num_images >= spec.min_images
