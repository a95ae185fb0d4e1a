"""`retrain`: the reference. Re-initialise the network and train it from scratch on the retain set.

Uses `train_classifier` with the challenge recipe (class-weighted cross-entropy, Adam, cosine annealing, the
best-validation checkpoint), so a retrained model is what the original would be had it never seen the forget set.
"""

from __future__ import annotations

from typing import ClassVar

from optuna.distributions import BaseDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS, ClassifierUnlearning, check_positive, reinitialize
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.training import train_classifier


@CLASSIFIER_METHODS.register("retrain")
class Retrain(ClassifierUnlearning):
    """Args:
        epochs: Training epochs.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        class_weighted: Weight the cross-entropy by `1 / count` per age group.
        keep_best: Keep the best-validation checkpoint (needs a validation loader).
        seed: Seeds the initial weights and the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {}
    """The reference is not tuned."""

    def __init__(self, epochs: int = 30, lr: float = 1e-4, weight_decay: float = 5e-3, class_weighted: bool = True,
                 keep_best: bool = True, seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr)
        self.epochs, self.lr, self.weight_decay = int(epochs), lr, weight_decay
        self.class_weighted, self.keep_best = class_weighted, keep_best

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        config = getattr(net, "config", None)
        if isinstance(config, dict) and "name" in config:  # the pool recipe's own initialisation, as retraining
            net.load_state_dict(create_classifier(**config, seed=self.run_seed).state_dict())
        else:  # a network not built by create_classifier: each layer's own reset
            reinitialize(net, self.run_seed)
        train_classifier(net, retain_loader, val_loader, epochs=self.epochs, lr=self.lr,
                         weight_decay=self.weight_decay, class_weights="balanced" if self.class_weighted else None,
                         keep_best=self.keep_best, seed=self.run_seed)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return Retrain()(net, retain_loader, forget_loader, val_loader)
