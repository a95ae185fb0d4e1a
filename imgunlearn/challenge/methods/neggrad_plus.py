"""`neggrad_plus`: gradient descent on the retain set and ascent on the forget set, weighted (Kurmanji et al., 2023).

Each retain batch is paired with a forget batch and the loss is

    L = alpha · CE(retain) - (1 - alpha) · CE(forget)

minimised with SGD and cosine annealing over the steps. The forget term is clipped at `forget_ceiling` (the
ascent stops pushing an example once its loss is that high) so that the ascent cannot diverge.
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
    check_positive,
    check_share,
    cosine,
    paired,
    sgd,
)
from imgunlearn.challenge.training import device_of


@CLASSIFIER_METHODS.register("neggrad_plus")
class NegGradPlus(ClassifierUnlearning):
    """Args:
        epochs: Passes over the retain set.
        lr: SGD learning rate.
        alpha: Weight of the retain term; the forget term gets `1 - alpha`.
        forget_ceiling: Per-example forget losses above this value stop contributing to the ascent.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        seed: Seeds the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 3),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "alpha": FloatDistribution(0.5, 0.99),
        "forget_ceiling": FloatDistribution(1.0, 10.0),
    }

    def __init__(self, epochs: int = 1, lr: float = 1e-3, alpha: float = 0.95, forget_ceiling: float = 5.0,
                 momentum: float = 0.9, weight_decay: float = 5e-4, seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr, forget_ceiling=forget_ceiling)
        check_share(alpha=alpha)
        self.epochs, self.lr, self.alpha, self.forget_ceiling = int(epochs), lr, alpha, forget_ceiling
        self.momentum, self.weight_decay = momentum, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        device = device_of(net)
        optimizer = sgd(net.parameters(), self.lr, self.momentum, self.weight_decay)
        scheduler = cosine(optimizer, self.epochs * len(retain_loader))
        net.train()
        for _ in range(self.epochs):
            for retain_x, retain_y, forget_x, forget_y in paired(retain_loader, forget_loader, device):
                retain_loss = F.cross_entropy(net(retain_x), retain_y)
                forget_loss = F.cross_entropy(net(forget_x), forget_y, reduction="none")
                forget_loss = torch.clamp(forget_loss, max=self.forget_ceiling).mean()
                loss = self.alpha * retain_loss - (1 - self.alpha) * forget_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return NegGradPlus()(net, retain_loader, forget_loader, val_loader)
