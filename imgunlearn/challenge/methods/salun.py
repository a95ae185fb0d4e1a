"""`salun`: saliency-masked random labelling (Fan et al., ICLR 2024).

The weight saliency is the magnitude of the gradient of the forget-set cross-entropy with respect to every
weight. Only the most salient `share` of all weights (one global threshold) is trained, with the random-label
objective of `random_label`; every other weight is held exactly at its original value: after each step it is
written back, so neither momentum nor weight decay can move it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution, FloatDistribution
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS, batches, check_share
from imgunlearn.challenge.methods.random_label import RandomLabel
from imgunlearn.challenge.training import device_of


def saliency_masks(net: nn.Module, forget_loader: DataLoader, share: float) -> dict[str, Tensor]:
    """Boolean masks (per parameter) of the `share` of weights with the largest forget-loss gradient magnitude."""
    params = {name: p for name, p in net.named_parameters() if p.requires_grad}
    grads = {name: torch.zeros_like(p) for name, p in params.items()}
    net.eval()
    for images, labels in batches(forget_loader, device_of(net)):
        loss = F.cross_entropy(net(images), labels, reduction="sum")
        for name, grad in zip(params, torch.autograd.grad(loss, list(params.values())), strict=True):
            grads[name] += grad
    flat = torch.cat([g.abs().flatten() for g in grads.values()])  # [num_weights]
    keep = int(round(share * flat.numel()))
    if keep == 0:
        return {name: torch.zeros_like(g, dtype=torch.bool) for name, g in grads.items()}
    threshold = torch.topk(flat, keep, sorted=False).values.min()
    return {name: g.abs() >= threshold for name, g in grads.items()}


@CLASSIFIER_METHODS.register("salun")
class SalUn(RandomLabel):
    """Args:
        share: Share of all weights that may change (the most salient ones).
        epochs, lr, forget_weight, momentum, weight_decay, seed: As in `random_label`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        **RandomLabel.search_space,
        "share": FloatDistribution(0.1, 0.9),
    }

    def __init__(self, share: float = 0.5, epochs: int = 1, lr: float = 1e-3, forget_weight: float = 1.0,
                 momentum: float = 0.9, weight_decay: float = 5e-4, seed: int | None = None) -> None:
        super().__init__(epochs, lr, forget_weight, momentum, weight_decay, seed)
        check_share(share=share)
        self.share = share

    def prepare(self, net: nn.Module, forget_loader: DataLoader) -> None:
        self._masks = saliency_masks(net, forget_loader, self.share)
        self._frozen = {name: p.detach().clone() for name, p in net.named_parameters() if name in self._masks}

    @torch.no_grad()
    def after_step(self, net: nn.Module) -> None:
        for name, p in net.named_parameters():
            if name in self._masks:
                p.copy_(torch.where(self._masks[name], p, self._frozen[name]))

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        try:
            super().unlearn(net, retain_loader, forget_loader, val_loader)
        finally:
            self._masks, self._frozen = {}, {}


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return SalUn()(net, retain_loader, forget_loader, val_loader)
