"""`EmbeddingCosine`: cosine similarity between the embeddings of each output and its own ground truth."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from imgunlearn.metrics.features import Feature, build_feature_extractor
from imgunlearn.metrics.mean import ImageMean


class EmbeddingCosine(ImageMean):
    """Mean over images of `cos(f(output), f(ground truth))`, the paper's CLIP-embedding similarity.

    1 when every output embeds exactly like its own ground truth; lower means the outputs carry less of
    their ground truth's content (high is good on images to keep, low on images to forget).

    Args:
        feature: Feature extractor: a name (`"clip"` for the paper's choice), a TorchScript path or an
            `nn.Module` (see `metrics.features`).
        allow_download: Let a named extractor download missing weights.
    """

    higher_is_better = True

    def __init__(self, feature: Feature = "stats", allow_download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.feature = build_feature_extractor(feature, "features", allow_download)

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add outputs `preds` and their ground truths `target`, both `[B, 3, H, W]` in [0, 1]."""
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must pair up")
        with self.feature.sharing():  # the ground-truth row passes one tensor as both
            cosine = F.cosine_similarity(self.feature(preds).double(), self.feature(target).double(), dim=1, eps=1e-12)
        self._add(cosine)
