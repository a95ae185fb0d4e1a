"""`conv_transpose_finetune`: transpose every conv kernel, then fine-tune on the retain set (Kaggle entry "CT").

One of the top entries of the NeurIPS 2023 unlearning challenge (DeepUnlearn's `kgltop5`): every conv kernel is
replaced by its spatial transpose (`w[o, i, y, x] -> w[o, i, x, y]`), which keeps each kernel's weights and
norms but scrambles the features they compute, and the network is fine-tuned on the retain set with
cross-entropy (SGD, cosine annealing per epoch). No use of the forget set. Kernels must be square.

Published: 3 epochs at SGD lr 1e-3 on a 32 px ResNet-18. Here the same epochs at lr 1e-2: on the 16 px
`cnn_small` (trained with Adam at 3e-3) lr 1e-3 leaves the transposed network far below the retrained accuracy.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    check_positive,
    conv_layers,
    cosine,
    finetune_retain,
    sgd,
)


@torch.no_grad()
def transpose_kernels(net: nn.Module) -> None:
    """Swap the two spatial axes of every conv kernel in place; a ValueError for a non-square kernel."""
    for conv in conv_layers(net):
        height, width = conv.weight.shape[2:]
        if height != width:
            raise ValueError(f"cannot transpose the {height}×{width} kernel of {conv}: kernels must be square")
        conv.weight.copy_(conv.weight.transpose(2, 3).clone())


@CLASSIFIER_METHODS.register("conv_transpose_finetune")
class ConvTransposeFinetune(ClassifierUnlearning):
    """Args:
        epochs: Fine-tuning passes over the retain set.
        lr: SGD learning rate (cosine-annealed per epoch).
        weight_decay: SGD weight decay.
        seed: Seeds the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 4),
        "lr": FloatDistribution(3e-4, 3e-2, log=True),
    }

    def __init__(self, epochs: int = 3, lr: float = 1e-2, weight_decay: float = 5e-4,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr)
        self.epochs, self.lr, self.weight_decay = int(epochs), lr, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        transpose_kernels(net)
        optimizer = sgd(net.parameters(), self.lr, weight_decay=self.weight_decay)
        finetune_retain(net, retain_loader, optimizer, cosine(optimizer, self.epochs), self.epochs,
                        step_per_batch=False)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return ConvTransposeFinetune()(net, retain_loader, forget_loader, val_loader)
