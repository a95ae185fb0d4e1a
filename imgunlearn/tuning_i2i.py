"""Tuning an I2I unlearning method on a validation split carved from the training splits.

The reported held-out splits (`forget_holdout`, `retain_holdout`) are never read: `TuningDataModule` drops them
when it loads the data and carves a seeded share of the training forget and retain images out as the
validation split instead. Forget images are carved by person / face id when ids are known, so validation faces
are faces the trial's unlearning never saw. Each trial unlearns the rest (`fit`) and is scored on the
validation split against the original:

    forgetting = −Δ PSNR in the forget boxes (dB) + detection_weight · (detection rate before − after)
                 (without boxes: −Δ PSNR of whole forget images)
    constraint = −Δ retain PSNR − retain_tolerance − retain_noise · SE      (feasible when <= 0)

SE is the standard error of the mean retain PSNR change over the validation images (paired, per image): a trial is
feasible unless it lost more retain PSNR than the tolerance by more than `retain_noise` standard errors of that
estimate. `retain_noise=0` holds the tolerance exactly; the default 1 keeps a setting that misses it by a
hundredth of a dB on a few hundred validation images (the shipped noisy_label on the embedded survey: −0.502 dB).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from imgunlearn.data.checks import check_splits
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.data.datasets import SplitDataset
from imgunlearn.data.splits import ImageSet
from imgunlearn.data.synthetic import generate_survey
from imgunlearn.data.user_data import load_user_splits, read_image_folder
from imgunlearn.tuning import TrialResult

VALIDATION = {"forget": "forget_validation", "retain": "retain_validation"}
FACE_METRICS = ["psnr", "face_psnr", "face_detect_rate"]


def subset(images: ImageSet, rows: np.ndarray) -> ImageSet:
    """The images `rows` of `images` (same order), without decoding any other image."""
    rows = np.asarray(rows, dtype=np.int64)
    pixels = images.pixels[rows] if images.pixels is not None else None
    return ImageSet([images.names[i] for i in rows], images.boxes[rows].copy(), images.ids[rows].copy(),
                    images.size, pixels, images._resize)


def carve(images: ImageSet, share: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows `(fit, validation)` of `images`: a seeded `share` held out, whole ids at a time when ids are known.

    Raises:
        ValueError: `share` is not in (0, 1), or too few images (ids) to leave one on each side.
    """
    if not 0 < share < 1:
        raise ValueError(f"validation_share must lie strictly between 0 and 1, got {share}")
    rng = np.random.default_rng(seed)
    known = images.ids >= 0
    if known.all() and len(np.unique(images.ids)) >= 2:
        people = rng.permutation(np.unique(images.ids))
        n_val = min(max(1, round(share * len(people))), len(people) - 1)
        held = np.isin(images.ids, people[:n_val])
    else:
        if len(images) < 2:
            raise ValueError(f"{what} has {len(images)} images; a validation split needs at least 2")
        order = rng.permutation(len(images))
        n_val = min(max(1, round(share * len(images))), len(images) - 1)
        held = np.zeros(len(images), dtype=bool)
        held[order[:n_val]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def _empty(like: ImageSet) -> ImageSet:
    pixels = np.zeros((0, 3, *like.size), dtype=np.uint8) if like.pixels is not None else None
    return ImageSet([], np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64), like.size, pixels,
                    like._resize)


class TuningDataModule(ForgetRetainDataModule):
    """A `ForgetRetainDataModule` for tuning: the held-out splits are dropped unread and a validation split is
    carved from the training splits.

    Its `forget_train` / `retain_train` are the remaining (`fit`) images; `validation` holds the carved ones.

    Args:
        validation_share: Share of training forget ids (or images) and retain images held out for validation.
        validation_seed: Seed of the carving.
        **kwargs: See `ForgetRetainDataModule`.
    """

    def __init__(self, *args: Any, validation_share: float = 0.2, validation_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < validation_share < 1:
            raise ValueError(f"validation_share must lie strictly between 0 and 1, got {validation_share}")
        self.validation_share, self.validation_seed = validation_share, validation_seed
        self.validation: dict[str, ImageSet] = {}

    def _load(self) -> None:
        hp = self.hparams
        if hp.source == "synthetic":
            splits = generate_survey(hp.num_forget, hp.num_retain, hp.num_holdout_forget, hp.num_holdout_retain,
                                     size=hp.size, seed=hp.seed, num_holdout_faces=hp.num_holdout_faces).splits
        else:
            splits = load_user_splits(hp.source, hp.resize)
        splits = dict(splits)
        for name in ("forget_holdout", "retain_holdout"):
            splits[name] = _empty(splits[name])  # dropped before anything reads them
        proxy = read_image_folder(hp.proxy_retain, hp.resize, what="proxy retain images") if hp.proxy_retain else None
        if len(splits["retain_train"]) == 0:
            raise ValueError("tuning carves its validation retain images from the retain set, which is empty "
                             "(a proxy retain folder alone is not enough)")
        for kind in ("forget", "retain"):
            name = f"{kind}_train"
            fit, held = carve(splits[name], self.validation_share, self.validation_seed + (kind == "retain"),
                              f"the {kind} set")
            self.validation[kind] = subset(splits[name], held)
            splits[name] = subset(splits[name], fit)
        check_splits(splits, self.task, proxy)
        self._splits, self._proxy = splits, proxy

    def validation_dataset(self, kind: str) -> SplitDataset:
        """The validation images of `kind` (`forget` or `retain`) with fixed degradations."""
        self.splits  # noqa: B018  (loads)
        return SplitDataset(self.validation[kind], self.task, f"{kind}_holdout", fixed=True, seed=self.hparams.seed)

    @property
    def has_boxes(self) -> bool:
        """Whether the validation forget images carry forget boxes (then face-box figures are scored)."""
        self.splits  # noqa: B018
        return bool((self.validation["forget"].boxes[:, 0] >= 0).any())


class Scorer:
    """Scores unlearned models on the validation split against the original (evaluated once).

    Args:
        original: The original model.
        data: The tuning data.
        retain_tolerance: Retain PSNR (dB) a trial may lose and stay feasible.
        detection_weight: dB of forgetting one unit of detection rate is worth (with boxes).
        retain_noise: Standard errors of the validation estimate of the retain change allowed beyond the tolerance.
        batch_size: Evaluation batch size.
        device: Where evaluation runs.
    """

    def __init__(self, original: Any, data: TuningDataModule, retain_tolerance: float = 0.5,
                 detection_weight: float = 10.0, batch_size: int = 32, device: str = "cpu",
                 retain_noise: float = 1.0) -> None:
        if retain_tolerance < 0:
            raise ValueError(f"retain_tolerance must be >= 0 dB, got {retain_tolerance}")
        if detection_weight < 0:
            raise ValueError(f"detection_weight must be >= 0, got {detection_weight}")
        if retain_noise < 0:
            raise ValueError(f"retain_noise must be >= 0 standard errors, got {retain_noise}")
        self.data, self.tolerance, self.weight, self.noise = data, retain_tolerance, detection_weight, retain_noise
        self.batch_size, self.device = batch_size, device
        self.faces = data.has_boxes
        self.datasets = {VALIDATION[kind]: data.validation_dataset(kind) for kind in ("forget", "retain")}
        self.original, self.original_retain = self.figures(original)

    def figures(self, model: Any) -> tuple[dict[str, float], np.ndarray]:
        """Validation figures of `model` (forget PSNR, in the face box when there are boxes; detections; retain
        PSNR) and its PSNR on each retain validation image."""
        from imgunlearn.evaluation.runner import compute_metrics, generate

        metrics = FACE_METRICS if self.faces else ["psnr"]
        data, outputs = generate({"model": model}, self.datasets, self.batch_size, self.device, progress=False)
        results = compute_metrics(data, outputs, metrics, None, None, self.batch_size, self.device,
                                  progress=False)["model"]
        forget, retain = results[VALIDATION["forget"]], results[VALIDATION["retain"]]
        out = {"forget_psnr": forget["face_psnr" if self.faces else "psnr"], "retain_psnr": retain["psnr"]}
        if self.faces:
            out["forget_detect_rate"] = forget["face_detect_rate"]
        return out, per_image_psnr(outputs["model"][VALIDATION["retain"]], data[VALIDATION["retain"]]["image"])

    def score(self, model: Any) -> TrialResult:
        """The trial's result: forgetting (maximised) under the retain constraint, with its figures."""
        (now, retain), before = self.figures(model), self.original
        forget_change = now["forget_psnr"] - before["forget_psnr"]
        retain_change = now["retain_psnr"] - before["retain_psnr"]
        change = retain - self.original_retain  # [N] paired per-image changes
        se = float(change.std(ddof=1) / np.sqrt(len(change))) if len(change) > 1 else 0.0
        value = -forget_change
        figures = {"forget_change_db": forget_change, "retain_change_db": retain_change, "retain_change_se": se,
                   **now}
        if self.faces:
            value += self.weight * (before["forget_detect_rate"] - now["forget_detect_rate"])
        return TrialResult(value=value, constraint=-retain_change - self.tolerance - self.noise * se, figures=figures)


def per_image_psnr(outputs: Any, images: Any) -> np.ndarray:
    """PSNR (dB) of each uint8 output `[N, 3, H, W]` against its uint8 image, as the `psnr` metric computes it."""
    import torch

    from imgunlearn.metrics.psnr import psnr_of_mse
    from imgunlearn.metrics.regions import per_image_mse

    a = torch.as_tensor(outputs).double() / 255.0
    b = torch.as_tensor(images).double() / 255.0
    mse, _ = per_image_mse(a, b, torch.ones_like(a[:, :1]))  # [N], every pixel
    return psnr_of_mse(mse).numpy()


def method_config(cls: type, settings: dict[str, Any], original: str, max_steps: int) -> dict[str, Any]:
    """A LightningCLI config for `imgunlearn unlearn --config`: the method with `settings` and the step count."""
    init_args = {"model": str(Path(original).resolve()), **copy.deepcopy(settings)}
    return {"model": {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args},
            "trainer": {"max_steps": int(max_steps)}}


def save_tradeoff(path: str | Path, trials: list[Any], tolerance: float, chosen: int | None, faces: bool) -> Path:
    """Every trial's retain change against its forget change, the constraint line and the chosen trial."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from imgunlearn.io import atomic_write_bytes

    fig = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [t for t in trials if "forget_change_db" in t.user_attrs]
    for feasible, color, label in ((True, "tab:green", "within the retain tolerance"), (False, "tab:red", "beyond it")):
        points = [t for t in done if (t.user_attrs.get("constraint", 0.0) <= 0) == feasible]
        ax.scatter([t.user_attrs["forget_change_db"] for t in points], [t.user_attrs["retain_change_db"] for t in points],
                   color=color, s=30, label=label, zorder=3)
    for t in done:
        ax.annotate(str(t.number), (t.user_attrs["forget_change_db"], t.user_attrs["retain_change_db"]),
                    textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.axhline(-tolerance, color="grey", linestyle="--", label=f"retain constraint (−{tolerance:g} dB)")
    ax.scatter([0], [0], color="tab:blue", marker="o", s=50, label="original", zorder=3)
    best = [t for t in done if t.number == chosen]
    if best:
        ax.scatter([best[0].user_attrs["forget_change_db"]], [best[0].user_attrs["retain_change_db"]], marker="*",
                   s=260, facecolor="none", edgecolor="black", linewidths=1.5, label=f"chosen (trial {chosen})",
                   zorder=4)
    where = "in the forget boxes" if faces else "of forget images"
    ax.set_xlabel(f"forget: change of PSNR {where} (dB)\nlower = more forgotten")
    ax.set_ylabel("keep: change of retain PSNR (dB)")
    ax.set_title("Tuning trials on the validation split (best: left, above the line)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))
    return Path(path)
