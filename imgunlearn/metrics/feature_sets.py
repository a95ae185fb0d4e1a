"""`FeatureSets`: the base of metrics that compare the feature distributions of outputs and ground truths."""

from __future__ import annotations

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from imgunlearn.metrics.features import Feature, build_feature_extractor


class FeatureSets(Metric):
    """Collects float64 features of outputs (`preds`) and ground truths (`target`); subclasses compare the sets.

    Args:
        feature: Feature extractor: a name, a TorchScript path or an `nn.Module` (see `metrics.features`).
        allow_download: Let a named extractor download missing weights.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, feature: Feature = "stats", allow_download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.feature = build_feature_extractor(feature, "features", allow_download)
        self.add_state("pred_features", [], dist_reduce_fx="cat")
        self.add_state("target_features", [], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add outputs `preds` and ground truths `target`, `[B, 3, H, W]` in [0, 1] (the sets may differ in size)."""
        with self.feature.sharing():  # the ground-truth row passes one tensor as both
            self.pred_features.append(self.feature(preds).double())
            self.target_features.append(self.feature(target).double())

    def _feature_sets(self) -> tuple[Tensor, Tensor]:
        """All features so far: outputs `[N, D]` and ground truths `[M, D]`."""
        return dim_zero_cat(self.pred_features), dim_zero_cat(self.target_features)
