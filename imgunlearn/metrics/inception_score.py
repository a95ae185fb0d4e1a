"""`InceptionScore`: how confidently and how variedly a classifier labels the model outputs.

Kept instead of torchmetrics' `InceptionScore`, which shuffles the logits with torch's global RNG before
cutting them into splits (so with several splits the value depends on the caller's random state, not only on
the images) and returns `(mean, std)` over the splits. Here the splits are consecutive, in update order, and
the score is their mean; it is computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from imgunlearn.metrics.features import Feature, build_feature_extractor


def inception_score(logits: Tensor, splits: int = 1) -> Tensor:
    """`exp(E_x KL(p(y|x) ‖ p(y)))` per split of `[N, K]` logits, averaged over the splits (in order)."""
    if splits < 1 or logits.shape[0] < splits:
        raise ValueError(f"cannot split {logits.shape[0]} images into {splits} Inception Score splits")
    log_p = torch.log_softmax(logits.double(), dim=1)  # [N, K]
    scores = []
    for chunk in log_p.chunk(splits, dim=0):
        log_marginal = torch.logsumexp(chunk, dim=0) - torch.log(torch.tensor(float(chunk.shape[0]), dtype=chunk.dtype))
        kl = (chunk.exp() * (chunk - log_marginal)).sum(dim=1)  # [n]
        scores.append(kl.mean().exp())
    return torch.stack(scores).mean()


class InceptionScore(Metric):
    """Inception Score of the outputs (ground truths are not used).

    Between 1 and the number of classes: high when each output gets one confident label and the labels
    vary across outputs. It needs a classifier: `feature="inception"` or a module returning logits.

    Args:
        feature: Logits extractor: `"inception"`, a TorchScript path or an `nn.Module` giving `[B, K]` logits.
        splits: The outputs are cut into this many consecutive splits; the score is their mean.
        allow_download: Let `"inception"` download missing weights.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, feature: Feature = "inception", splits: int = 1, allow_download: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.feature = build_feature_extractor(feature, "logits", allow_download)
        self.splits = splits
        self.add_state("logits", [], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor | None = None, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add outputs `preds` `[B, 3, H, W]` in [0, 1]."""
        self.logits.append(self.feature(preds).double())

    def compute(self) -> Tensor:
        return inception_score(dim_zero_cat(self.logits), self.splits)
