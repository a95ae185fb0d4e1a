"""`finetune`: the Kaggle starting kit's baseline.

Fine-tune on the retain set with plain cross-entropy: SGD (lr 1e-3, momentum 0.9, weight decay 5e-4) and
cosine annealing with `T_max = epochs`, stepped once per epoch. One epoch by default. The forget set is not used;
forgetting comes only from catastrophic forgetting of what the retain set does not support.
"""

from __future__ import annotations

from typing import ClassVar

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    check_positive,
    cosine,
    finetune_retain,
    sgd,
)


@CLASSIFIER_METHODS.register("finetune")
class Finetune(ClassifierUnlearning):
    """Args:
        epochs: Passes over the retain set.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        seed: Seeds the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 4),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
    }

    def __init__(self, epochs: int = 1, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 5e-4,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr)
        self.epochs, self.lr, self.momentum, self.weight_decay = int(epochs), lr, momentum, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        optimizer = sgd(net.parameters(), self.lr, self.momentum, self.weight_decay)
        scheduler = cosine(optimizer, self.epochs)
        finetune_retain(net, retain_loader, optimizer, scheduler, self.epochs, step_per_batch=False)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return Finetune()(net, retain_loader, forget_loader, val_loader)
