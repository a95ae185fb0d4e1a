"""`FID`: Fréchet distance between the feature distributions of model outputs and ground truths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor

from imgunlearn.metrics.feature_sets import FeatureSets


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


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """`‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)` of two Gaussians, in float64.

    `tr((Σ1 Σ2)^½)` is the sum of square roots of the eigenvalues of `Σ1^½ Σ2 Σ1^½`, which has the same
    eigenvalues as `Σ1 Σ2` and is symmetric, so it needs no general matrix square root.
    """
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    with single_thread() if sigma1.device.type == "cpu" else nullcontext():
        w, v = torch.linalg.eigh(sigma1)
        root1 = (v * w.clamp(min=0).sqrt()) @ v.T
        inner = root1 @ sigma2 @ root1
        trace_root = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu1 - mu2) ** 2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_root


def mean_and_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean `[D]` and unbiased covariance `[D, D]` of `[N, D]` features, in float64."""
    features = features.double()
    mean = features.mean(dim=0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


class FID(FeatureSets):
    """Fréchet distance between features of outputs (`preds`) and of their ground truths (`target`).

    0 when the two sets have the same feature mean and covariance; larger means the outputs are
    distributed less like the real images.

    Args:
        feature: Feature extractor: a name, a TorchScript path or an `nn.Module` (see `metrics.features`).
        allow_download: Let a named extractor download missing weights.
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        preds, target = self._feature_sets()
        if preds.shape[0] < 2 or target.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {preds.shape[0]} and {target.shape[0]}")
        return frechet_distance(*mean_and_covariance(preds), *mean_and_covariance(target))
