"""`LPIPS`: learned perceptual distance, when its backbone weights are on the machine (optional)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from imgunlearn.metrics.features import FeatureUnavailableError

BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


class LPIPS(LearnedPerceptualImagePatchSimilarity):
    """Mean LPIPS distance between outputs and ground truths (0 = perceptually identical; lower is closer).

    torchmetrics ships the LPIPS heads; the ImageNet backbone comes from torchvision's weights, which must
    already be in the torch hub cache unless `allow_download=True`.

    Args:
        net_type: `alex`, `vgg` or `squeeze`.
        allow_download: Let torchvision download the backbone weights.
    """

    def __init__(self, net_type: str = "alex", allow_download: bool = False, **kwargs) -> None:
        if net_type not in BACKBONES:
            raise ValueError(f"unknown LPIPS net_type {net_type!r}; known: {', '.join(BACKBONES)}")
        import torchvision

        url = getattr(torchvision.models, BACKBONES[net_type]).DEFAULT.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if not allow_download and not cached.is_file():
            raise FeatureUnavailableError(f"LPIPS needs the torchvision {net_type} weights at {cached}; pass "
                                          "allow_download=True on a machine with network access")
        try:
            super().__init__(net_type=net_type, normalize=True, **kwargs)
        except Exception as error:  # download or load failures of a third-party package
            raise FeatureUnavailableError(f"could not load LPIPS ({net_type}): {error}") from error

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add outputs `preds` and ground truths `target`, `[B, 3, H, W]` in [0, 1]."""
        super().update(preds.float().clamp(0, 1), target.float().clamp(0, 1))
