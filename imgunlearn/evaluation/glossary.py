"""What each evaluation metric means, in plain words, and which direction is good on each kind of split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric.

    Args:
        title: Short display name.
        sentence: One plain-language sentence: what it measures and which direction is good.
        retain_goal: The good direction on images to keep: `"higher"`, `"lower"` or `"same"` (close to the
            original model's value).
        forget_goal: The good direction on images to forget.
    """

    title: str
    sentence: str
    retain_goal: str
    forget_goal: str


METRIC_INFO: dict[str, MetricInfo] = {
    "psnr": MetricInfo(
        "PSNR (dB)", "How close each output is to its true image, pixel by pixel, in decibels; higher means closer, "
        "so higher is good on images to keep and lower means more was forgotten on images to forget.",
        "higher", "lower"),
    "ssim": MetricInfo(
        "SSIM", "How similar the output's local structure (edges, textures, contrast) is to the true image, from "
        "0 (unrelated) to 1 (identical); higher is good on images to keep, lower on images to forget.",
        "higher", "lower"),
    "mse": MetricInfo(
        "MSE", "The average squared pixel difference between output and true image (0 = identical); lower is good "
        "on images to keep, higher on images to forget.",
        "lower", "higher"),
    "hidden_psnr": MetricInfo(
        "PSNR, hidden part (dB)", "PSNR over only the pixels the model could not see and had to invent; higher "
        "means the model recreated the hidden part more faithfully.",
        "higher", "lower"),
    "hidden_ssim": MetricInfo(
        "SSIM, hidden part", "SSIM over only the pixels the model could not see; higher means the invented part "
        "has the true structure.",
        "higher", "lower"),
    "hidden_mse": MetricInfo(
        "MSE, hidden part", "MSE over only the pixels the model could not see; lower means a more faithful guess.",
        "lower", "higher"),
    "face_psnr": MetricInfo(
        "PSNR, face box (dB)", "PSNR inside the box around the content to forget (a face); lower means less of "
        "the face comes back, which is the point of forgetting it.",
        "higher", "lower"),
    "face_ssim": MetricInfo(
        "SSIM, face box", "SSIM inside the box around the content to forget; lower means the face's structure "
        "is no longer reproduced.",
        "higher", "lower"),
    "face_mse": MetricInfo(
        "MSE, face box", "MSE inside the box around the content to forget; higher means the face is reproduced "
        "less faithfully.",
        "lower", "higher"),
    "face_detect_rate": MetricInfo(
        "Face detection rate", "The share of images in which an off-the-shelf face detector (OpenCV's Haar "
        "cascade) finds a face; on images to forget lower is good, and the ground-truth row shows how often the "
        "detector finds the real faces at all.",
        "same", "lower"),
    "face_leak_rate": MetricInfo(
        "Face leak rate (in box)", "The share of images with a detected face overlapping the box of the content "
        "to forget; lower is good on images to forget.",
        "same", "lower"),
    "fid": MetricInfo(
        "FID", "How differently the set of outputs is distributed from the set of true images, as a distance "
        "between feature statistics (0 = indistinguishable); lower is good on images to keep, higher on images "
        "to forget.",
        "lower", "higher"),
    "kid": MetricInfo(
        "KID", "Like FID but unbiased for small sets (about 0 = indistinguishable, may dip slightly below 0); "
        "lower is good on images to keep, higher on images to forget.",
        "lower", "higher"),
    "embedding_cosine": MetricInfo(
        "Embedding cosine", "How alike each output and its own true image look to a feature extractor, as the "
        "cosine of their feature vectors (1 = alike); higher is good on images to keep, lower on images to "
        "forget.",
        "higher", "lower"),
    "inception_score": MetricInfo(
        "Inception Score", "How confidently and how variedly an image classifier labels the outputs (from 1 "
        "upwards); it does not look at the true images, so read it against the original model's value.",
        "same", "same"),
    "lpips": MetricInfo(
        "LPIPS", "A learned perceptual distance between output and true image (0 = the same to a viewer); lower "
        "is good on images to keep, higher on images to forget.",
        "lower", "higher"),
}

SPLIT_INFO: dict[str, str] = {
    "forget_train": "images to forget that the unlearning run trained on",
    "forget_holdout": "images of the kind to forget that the unlearning run never saw",
    "retain_train": "images to keep that the unlearning run trained on",
    "retain_holdout": "images to keep that the unlearning run never saw",
}

ROW_INFO: dict[str, str] = {
    "ground_truth": "the true images themselves (what a perfect model would output)",
    "input": "the degraded or partly hidden images the models receive (what doing nothing gives)",
    "original": "the model before unlearning",
}


def is_forget_split(split: str) -> bool:
    """Splits whose names start with `forget` hold images to forget."""
    return split.startswith("forget")


def goal(metric: str, split: str) -> str:
    """`"higher"`, `"lower"`, `"same"` or `""` (unknown metric) for `metric` on `split`."""
    info = METRIC_INFO.get(metric)
    if info is None:
        return ""
    return info.forget_goal if is_forget_split(split) else info.retain_goal


def describe_task(task: str | dict[str, Any], ratio: float | None = None) -> str:
    """A plain description of a task given by name (and ratio) or as a `Task.to_config()` dict."""
    box, config = "center", task if isinstance(task, dict) else {}
    if isinstance(task, dict):
        task, ratio, box = task.get("name", "restore"), task.get("ratio", ratio), task.get("box", "center")
    if task == "inpaint":
        where = "a centred box" if box == "center" else "a box at a random place"
        return f"inpainting: {where} of side {ratio:g} of the image is hidden"
    if task == "outpaint":
        return f"outpainting: borders of width {ratio:g} of the side are hidden"
    if task == "hybrid":
        return "mixed: per image a centred box, a random box or the borders are hidden"
    damage = []
    if config.get("downsample", 2) > 1:
        damage.append("blurred")
    if config.get("noise_std", 0.1) > 0:
        damage.append(f"noised (σ {config['noise_std']:g})" if "noise_std" in config else "noised")
    if config.get("holes", 0):
        damage.append(f"given {config['holes']} small holes")
    return "restoration: the image is " + (" and ".join(damage) or "passed through unchanged")
