"""`FID`: Fréchet distance between the feature distributions of model outputs and ground truths.

torchmetrics' `FrechetInceptionDistance` does the work (running sums of features and of their outer products,
the covariances and the Fréchet distance); this class feeds it our pluggable extractors (`metrics.features`):

- torchmetrics needs the feature width when it creates its states (a `num_features` attribute, or one probe
  with a random 299 × 299 image from the global RNG). Here the states are sized from the first batch instead,
  so any extractor works at any image size and no random numbers are drawn.
- The features are handed over in float64, so the result is float64 (torchmetrics returns the extractor's
  dtype). Against the former direct implementation (covariances of centred features, `eigh` of
  `Σ1^½ Σ2 Σ1^½`) the values agree to about 1e-7 relative: torchmetrics takes the eigenvalues of `Σ1 Σ2`.
- Fewer than 2 images per set is a ValueError, as for KID.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from imgunlearn.metrics.features import Feature, FeatureExtractor, build_feature_extractor

_SUMS = ("real_features_sum", "fake_features_sum")
_COVARIANCE_SUMS = ("real_features_cov_sum", "fake_features_cov_sum")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run small dense eigen-solvers on one CPU thread.

    On a busy machine a multi-threaded LAPACK eigen-solver can take hundreds of times longer than a single
    thread on the covariance sizes used here.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Float64(nn.Module):
    """The extractor's `[B, D]` features in float64; `num_features` is 0 until the first batch sizes the states."""

    num_features = 0

    def __init__(self, extractor: FeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor(images).double()


class FID(FrechetInceptionDistance):
    """Fréchet distance between features of outputs (`preds`) and of their ground truths (`target`).

    0 when the two sets have the same feature mean and covariance; larger means the outputs are
    distributed less like the real images.

    Args:
        feature: Feature extractor: a name, a TorchScript path or an `nn.Module` (see `metrics.features`).
        allow_download: Let a named extractor download missing weights.
        **kwargs: Further torchmetrics `Metric` arguments.
    """

    higher_is_better = False

    def __init__(self, feature: Feature = "stats", allow_download: bool = False, **kwargs) -> None:
        extractor = build_feature_extractor(feature, "features", allow_download)
        super().__init__(feature=_Float64(extractor), normalize=True, **kwargs)
        self.feature = extractor

    def _size_states(self, width: int) -> None:
        """Re-create the empty feature states with `width` features (before the first update)."""
        for name in _SUMS:
            self.add_state(name, torch.zeros(width, dtype=torch.float64, device=self.device), dist_reduce_fx="sum")
        for name in _COVARIANCE_SUMS:
            self.add_state(name, torch.zeros(width, width, dtype=torch.float64, device=self.device),
                           dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add outputs `preds` and ground truths `target`, `[B, 3, H, W]` in [0, 1] (the sets may differ in size)."""
        with self.feature.sharing():
            if self.real_features_sum.numel() == 0:
                self._size_states(self.inception(target).shape[1])
            super().update(target, real=True)
            super().update(preds, real=False)

    def compute(self) -> Tensor:
        counts = int(self.fake_features_num_samples), int(self.real_features_num_samples)
        if min(counts) < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {counts[0]} and {counts[1]}")
        with single_thread() if self.device.type == "cpu" else nullcontext():
            return super().compute()
