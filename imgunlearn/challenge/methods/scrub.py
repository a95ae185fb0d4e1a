"""`scrub`: SCalable Remembering and Unlearning unBound (Kurmanji et al., NeurIPS 2023).

A student (the network) starts from the original, which also serves as a frozen teacher. Each epoch may begin
with a *max* step, a pass over the forget set that pushes the student's predictions away from the teacher's
(ascent on their KL divergence), and then has a *min* step, a pass over the retain set that keeps the student
close to the teacher and to the labels: `alpha · KL + gamma · CE`. Max steps happen in the first `max_epochs`
epochs only. KL divergences use temperature `temperature` (scaled by its square, as in distillation).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    batches,
    check_positive,
    descend,
    distill_kl,
    frozen_copy,
    sgd,
)
from imgunlearn.challenge.training import device_of


@CLASSIFIER_METHODS.register("scrub")
class Scrub(ClassifierUnlearning):
    """Args:
        epochs: Epochs; each has a min step (one pass over the retain set).
        max_epochs: The first `max_epochs` epochs also start with a max step over the forget set.
        lr: SGD learning rate.
        alpha: Weight of the retain KL term.
        gamma: Weight of the retain cross-entropy term.
        temperature: Distillation temperature.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        seed: Seeds the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 3),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "alpha": FloatDistribution(0.1, 2.0, log=True),
        "gamma": FloatDistribution(0.1, 2.0, log=True),
        "temperature": FloatDistribution(1.0, 8.0, log=True),
    }

    def __init__(self, epochs: int = 2, max_epochs: int = 1, lr: float = 5e-4, alpha: float = 0.5,
                 gamma: float = 1.0, temperature: float = 4.0, momentum: float = 0.9, weight_decay: float = 5e-4,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr, temperature=temperature)
        if not 0 <= max_epochs <= epochs:
            raise ValueError(f"max_epochs must lie in [0, epochs={epochs}], got {max_epochs}")
        self.epochs, self.max_epochs, self.lr, self.alpha, self.gamma = int(epochs), int(max_epochs), lr, alpha, gamma
        self.temperature, self.momentum, self.weight_decay = temperature, momentum, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        device, teacher = device_of(net), frozen_copy(net)
        optimizer = sgd(net.parameters(), self.lr, self.momentum, self.weight_decay)
        net.train()
        for epoch in range(self.epochs):
            if epoch < self.max_epochs:
                for images, _ in batches(forget_loader, device):
                    with torch.no_grad():
                        target = teacher(images)
                    descend(optimizer, -distill_kl(net(images), target, self.temperature))
            for images, labels in batches(retain_loader, device):
                with torch.no_grad():
                    target = teacher(images)
                logits = net(images)
                loss = self.alpha * distill_kl(logits, target, self.temperature) + self.gamma * F.cross_entropy(
                    logits, labels)
                descend(optimizer, loss)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return Scrub()(net, retain_loader, forget_loader, val_loader)
