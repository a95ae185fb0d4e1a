"""`KID`: kernel (MMD) distance between the feature distributions of model outputs and ground truths.

Kept instead of torchmetrics' `KernelInceptionDistance`, which differs in documented ways that change results:
it draws its subsets from torch's global RNG (a value depends on the caller's random state; here the draws
are seeded by `seed`), it refuses a `subset_size` larger than either set (here it is capped at the smaller
set, and with whole sets the subsets are skipped: the value is the exact unbiased MMD²), and its estimator
divides the cross term by `m²` with one subset size `m` for both sets (here outputs and ground truths may
differ in number).
"""

from __future__ import annotations

import torch
from torch import Tensor

from imgunlearn.metrics.feature_sets import FeatureSets
from imgunlearn.metrics.features import Feature


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> Tensor:
    """`(γ x·y + c)^d` for all pairs of rows, `[N, M]`; γ defaults to 1 / D."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * x @ y.T + coef) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> Tensor:
    """Unbiased squared MMD between samples `x` `[N, D]` and `y` `[M, D]` (diagonal terms excluded)."""
    n, m = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return term_xx + term_yy - 2 * k_xy.mean()


class KID(FeatureSets):
    """Kernel Inception Distance: mean unbiased MMD² over random subsets, with a cubic polynomial kernel.

    About 0 (it can be slightly negative) when outputs and ground truths come from the same distribution.
    Unlike FID it is unbiased, so it can be compared across sets of different sizes.

    Args:
        feature: Feature extractor: a name, a TorchScript path or an `nn.Module` (see `metrics.features`).
        subsets: Number of random subsets averaged.
        subset_size: Images per subset (capped at the smaller set's size; at that size every subset is the
            whole set).
        degree: Kernel degree.
        gamma: Kernel scale (default 1 / feature dimension).
        coef: Kernel offset.
        seed: Seeds the subset draws.
        allow_download: Let a named extractor download missing weights.
    """

    higher_is_better = False

    def __init__(self, feature: Feature = "stats", subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                 gamma: float | None = None, coef: float = 1.0, seed: int = 0, allow_download: bool = False,
                 **kwargs) -> None:
        if subsets < 1 or subset_size < 2:
            raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
        super().__init__(feature, allow_download, **kwargs)
        self.subsets, self.subset_size = subsets, subset_size
        self.degree, self.gamma, self.coef, self.seed = degree, gamma, coef, seed

    def compute(self) -> Tensor:
        preds, target = self._feature_sets()
        size = min(self.subset_size, preds.shape[0], target.shape[0])
        if size < 2:
            raise ValueError(f"KID needs at least 2 images per set, got {preds.shape[0]} and {target.shape[0]}")
        if size == preds.shape[0] == target.shape[0]:  # every subset is the whole of both sets
            return mmd2_unbiased(preds, target, self.degree, self.gamma, self.coef)
        generator = torch.Generator().manual_seed(self.seed)
        values = []
        for _ in range(self.subsets):
            x = preds[torch.randperm(preds.shape[0], generator=generator)[:size].to(preds.device)]
            y = target[torch.randperm(target.shape[0], generator=generator)[:size].to(target.device)]
            values.append(mmd2_unbiased(x, y, self.degree, self.gamma, self.coef))
        return torch.stack(values).mean()
