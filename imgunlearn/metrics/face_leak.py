"""`FaceLeakRate`: the share of images in which a face detector still finds a face."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class FaceLeakRate(Metric):
    """Share of images with at least one detected face (Haar cascade, see `evaluation.faces`).

    Scored on model outputs it says how often a face is still recognisable as a face; scored on the
    ground truth and on the model input it gives the references to read that number against.

    Args:
        in_region: Count only detections whose box lies at least `min_overlap` inside the example's
            `forget_mask` (the face box); images without a forget pixel are then skipped.
        min_overlap: Share of a detection box that must be covered by the forget mask (with `in_region`).
        detector: A `FaceDetector`; default the settings tuned for 64×64 tiles.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, in_region: bool = False, min_overlap: float = 0.25, detector=None, **kwargs) -> None:
        super().__init__(**kwargs)
        from imgunlearn.evaluation.faces import default_detector  # imported here: evaluation imports metrics

        if not 0.0 < min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
        self.detector = detector if detector is not None else default_detector()
        self.in_region, self.min_overlap = in_region, min_overlap
        self.add_state("hits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor | None = None, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Detect faces in images `preds` `[B, 3, H, W]` in [0, 1]; `forget_mask` `[B, 1, H, W]` with `in_region`."""
        from imgunlearn.evaluation.faces import box_overlap

        if preds.ndim != 4 or preds.shape[1] != 3:
            raise ValueError(f"FaceLeakRate takes RGB images [B, 3, H, W], got {tuple(preds.shape)}")
        if self.in_region and (forget_mask is None or forget_mask.shape[0] != preds.shape[0]):
            raise ValueError("FaceLeakRate(in_region=True) needs the batch's forget_mask [B, 1, H, W]")
        images = (preds.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        images = images.permute(0, 2, 3, 1).cpu().numpy()  # [B, H, W, 3] uint8
        forget = (forget_mask[:, 0] > 0.5).cpu().numpy() if self.in_region else None  # [B, H, W]
        for i in range(images.shape[0]):
            if forget is not None and not forget[i].any():
                continue
            boxes = self.detector.detect(images[i])
            if forget is not None:
                boxes = [b for b in boxes if box_overlap(b, forget[i]) >= self.min_overlap]
            self.hits += int(len(boxes) > 0)
            self.count += 1

    def compute(self) -> Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.hits.double() / self.count
