"""`random_label`: train the forget set towards random wrong labels while fine-tuning on the retain set.

Each retain batch is paired with a forget batch whose labels are replaced by a uniformly drawn *different*
age group; the loss `CE(retain) + forget_weight · CE(forget, random labels)` is minimised with SGD and cosine
annealing over the steps (Golatkar et al., 2020; the "RL" baseline of SalUn).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    check_positive,
    cosine,
    paired,
    sgd,
)
from imgunlearn.challenge.training import device_of, num_classes_of


def random_other_labels(labels: Tensor, num_classes: int) -> Tensor:
    """A uniformly drawn label different from each given one (torch's global RNG)."""
    shift = torch.randint(1, num_classes, labels.shape).to(labels.device)
    return (labels + shift) % num_classes


@CLASSIFIER_METHODS.register("random_label")
class RandomLabel(ClassifierUnlearning):
    """Args:
        epochs: Passes over the retain set.
        lr: SGD learning rate.
        forget_weight: Weight of the random-label term.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        seed: Seeds the batch order and the random labels.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 3),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "forget_weight": FloatDistribution(0.1, 3.0, log=True),
    }

    def __init__(self, epochs: int = 1, lr: float = 1e-3, forget_weight: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 5e-4, seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr, forget_weight=forget_weight)
        self.epochs, self.lr, self.forget_weight = int(epochs), lr, forget_weight
        self.momentum, self.weight_decay = momentum, weight_decay

    def prepare(self, net: nn.Module, forget_loader: DataLoader) -> None:
        """Called once before training (subclasses compute masks here)."""

    def after_step(self, net: nn.Module) -> None:
        """Called after every optimiser step (subclasses constrain the weights here)."""

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        device, num_classes = device_of(net), num_classes_of(net)
        self.prepare(net, forget_loader)
        optimizer = sgd(net.parameters(), self.lr, self.momentum, self.weight_decay)
        scheduler = cosine(optimizer, self.epochs * len(retain_loader))
        net.train()
        for _ in range(self.epochs):
            for retain_x, retain_y, forget_x, forget_y in paired(retain_loader, forget_loader, device):
                wrong = random_other_labels(forget_y, num_classes)
                loss = F.cross_entropy(net(retain_x), retain_y) + self.forget_weight * F.cross_entropy(net(forget_x), wrong)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                self.after_step(net)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return RandomLabel()(net, retain_loader, forget_loader, val_loader)
