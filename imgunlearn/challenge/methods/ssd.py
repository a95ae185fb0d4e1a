"""`ssd`: Selective Synaptic Dampening (Foster et al., AAAI 2024). No training, two importance passes.

The importance of a weight on a data set is the diagonal of the Fisher information: the mean over batches of
the squared gradient of the cross-entropy. Weights much more important to the forget set than to the retain
set (`imp_forget > alpha · imp_retain`) are scaled down by `beta = min(lambda · imp_retain / imp_forget, 1)`.
The paper computes the retain importance on the whole training set; here the retain loader stands in for it,
optionally capped at `retain_batches` batches to save time.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution, FloatDistribution
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS, ClassifierUnlearning, batches, check_positive
from imgunlearn.challenge.training import device_of


def fisher_importance(net: nn.Module, loader: DataLoader, max_batches: int | None = None) -> dict[str, Tensor]:
    """Mean squared gradient of the batch cross-entropy for every parameter (the net in eval mode)."""
    params = {name: p for name, p in net.named_parameters() if p.requires_grad}
    importance = {name: torch.zeros_like(p) for name, p in params.items()}
    net.eval()
    count = 0
    for images, labels in batches(loader, device_of(net)):
        if max_batches is not None and count >= max_batches:
            break
        grads = torch.autograd.grad(F.cross_entropy(net(images), labels), list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            importance[name] += grad**2
        count += 1
    if count == 0:
        raise ValueError("cannot compute importances from an empty loader")
    return {name: value / count for name, value in importance.items()}


@CLASSIFIER_METHODS.register("ssd")
class SSD(ClassifierUnlearning):
    """Args:
        alpha: Selection threshold: dampen weights whose forget importance exceeds `alpha` × retain importance.
        dampening: The paper's lambda: `beta = min(dampening · imp_retain / imp_forget, 1)`.
        retain_batches: Use at most this many retain batches for the retain importance (None: all).
        seed: Seeds the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "alpha": FloatDistribution(1.0, 20.0, log=True),
        "dampening": FloatDistribution(0.1, 5.0, log=True),
    }

    def __init__(self, alpha: float = 10.0, dampening: float = 1.0, retain_batches: int | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(alpha=alpha, dampening=dampening)
        if retain_batches is not None:
            check_positive(retain_batches=retain_batches)
        self.alpha, self.dampening, self.retain_batches = alpha, dampening, retain_batches

    @torch.no_grad()
    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        with torch.enable_grad():
            retain = fisher_importance(net, retain_loader, self.retain_batches)
            forget = fisher_importance(net, forget_loader)
        for name, p in net.named_parameters():
            if name not in retain:
                continue
            selected = forget[name] > self.alpha * retain[name]
            beta = torch.clamp(self.dampening * retain[name] / forget[name].clamp_min(1e-30), max=1.0)
            p.mul_(torch.where(selected, beta, torch.ones_like(beta)))


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return SSD()(net, retain_loader, forget_loader, val_loader)
