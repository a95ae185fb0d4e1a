"""`weight_noise_finetune`: Gaussian noise on conv weights around a class-weighted fine-tune (Kaggle entry "CFW").

One of the top entries of the NeurIPS 2023 unlearning challenge (DeepUnlearn's `kgltop3`): Gaussian noise of
standard deviation `sigma_start` is added to conv weights, the network is fine-tuned on the retain set with
class-weighted cross-entropy (`1 / count` per age group; SGD, cosine annealing per epoch), and before the last
epoch a second, much smaller noise `sigma_end` is added. No use of the forget set.

`layers="first"` perturbs the input conv only, which is what the published code did on ResNet-18 (it perturbs
the network's top-level modules named `conv`, i.e. `conv1`); `layers="all"` perturbs every conv layer.
Published: σ 0.6 then 0.005, 4 epochs at SGD lr 7e-4. On the 16 px `cnn_small` (a 3→16-channel input conv,
not ResNet-18's 3→64 7×7) σ 0.6 leaves test accuracy near 50% after fine-tuning, so the default is σ 0.15,
3 epochs (the time budget) at lr 1e-2.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    add_weight_noise,
    check_positive,
    conv_layers,
    cosine,
    finetune_retain,
    first_conv,
    sgd,
)
from imgunlearn.challenge.training import balanced_class_weights, device_of, labels_of, num_classes_of

LAYERS = ("first", "all")


@CLASSIFIER_METHODS.register("weight_noise_finetune")
class WeightNoiseFinetune(ClassifierUnlearning):
    """Args:
        sigma_start: Noise standard deviation before fine-tuning.
        sigma_end: Noise standard deviation before the last epoch (only with 2 or more epochs).
        layers: `first` (the input conv) or `all` (every conv layer).
        epochs: Fine-tuning passes over the retain set.
        lr: SGD learning rate (cosine-annealed per epoch).
        weight_decay: SGD weight decay.
        seed: Seeds the noise and the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "sigma_start": FloatDistribution(0.01, 1.0, log=True),
        "layers": CategoricalDistribution(list(LAYERS)),
        "epochs": IntDistribution(1, 4),
        "lr": FloatDistribution(3e-4, 3e-2, log=True),
    }

    def __init__(self, sigma_start: float = 0.15, sigma_end: float = 0.005, layers: str = "first", epochs: int = 3,
                 lr: float = 1e-2, weight_decay: float = 5e-4, seed: int | None = None) -> None:
        super().__init__(seed)
        if layers not in LAYERS:
            raise ValueError(f"unknown layers {layers!r}; known: {', '.join(LAYERS)}")
        check_positive(epochs=epochs, lr=lr)
        if sigma_start < 0 or sigma_end < 0:
            raise ValueError(f"noise levels must be non-negative, got sigma_start={sigma_start}, sigma_end={sigma_end}")
        self.sigma_start, self.sigma_end, self.layers = sigma_start, sigma_end, layers
        self.epochs, self.lr, self.weight_decay = int(epochs), lr, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        weights = [first_conv(net).weight] if self.layers == "first" else [c.weight for c in conv_layers(net)]
        class_weights = balanced_class_weights(labels_of(retain_loader), num_classes_of(net)).to(device_of(net))

        def perturb(epoch: int) -> None:
            if epoch == 0:
                add_weight_noise(weights, self.sigma_start)
            if epoch == self.epochs - 1 and self.epochs > 1:
                add_weight_noise(weights, self.sigma_end)

        def weighted_ce(images: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
            return F.cross_entropy(logits, labels, weight=class_weights)

        optimizer = sgd(net.parameters(), self.lr, weight_decay=self.weight_decay)
        finetune_retain(net, retain_loader, optimizer, cosine(optimizer, self.epochs), self.epochs,
                        step_per_batch=False, loss=weighted_ce, on_epoch=perturb)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return WeightNoiseFinetune()(net, retain_loader, forget_loader, val_loader)
