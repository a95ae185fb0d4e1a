"""Training and evaluating the age classifiers: the challenge recipe as a plain, seeded loop.

`train_classifier` trains the original model and every retrained-from-scratch model of a pool. It is a plain
loop rather than a LightningModule on purpose: a pool trains hundreds of small models on CPU, where
Lightning's per-run set-up (trainer, loggers, callbacks, checkpoint I/O) costs more than a small model's
epoch, and a plain loop makes the result a pure function of (model, data, seed) that is easy to audit.

The challenge recipe is the default: class-weighted cross-entropy (`1 / count` per age group), Adam (lr 1e-4,
weight decay 5e-3), cosine annealing over the epochs, the best-validation-accuracy checkpoint kept.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset


@contextmanager
def seeded(seed: int, *loaders: DataLoader | None, deterministic: bool = False) -> Iterator[None]:
    """Run the body with Python's, NumPy's and torch's global RNGs seeded by `seed` and each loader's generator
    re-seeded; everything is restored afterwards.

    A seeded call gives the same result however often the loaders were used before, and leaves no trace on the
    caller's random state. This is the one seeding helper of the challenge track: the pool runs every member
    inside `seeded(member_seed, deterministic=True)`, the methods run their call inside
    `seeded(seed, *loaders)`.

    Args:
        seed: The seed (any integer; NumPy gets it modulo 2**32).
        *loaders: Loaders whose own `generator` is re-seeded (loader `i` from `seed * 7919 + i + 1`).
        deterministic: Also turn on torch's deterministic algorithms (warn-only) for the body.
    """
    saved = []
    py_state, np_state = random.getstate(), np.random.get_state()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        for i, loader in enumerate(loaders):
            generator = getattr(loader, "generator", None)
            if generator is not None:
                saved.append((generator, generator.get_state()))
                generator.manual_seed(seed * 7919 + i + 1)
        try:
            yield
        finally:
            for generator, state in saved:
                generator.set_state(state)
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)


def split_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """`(images, labels)` of a batch given as a dict `{"image", "age_group"}` or as an `(image, label)` pair."""
    if isinstance(batch, Mapping):
        if "image" not in batch or "age_group" not in batch:
            raise ValueError(f"batch dict needs 'image' and 'age_group' keys, got {sorted(batch)}")
        return batch["image"], batch["age_group"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(f"cannot read images and labels from a batch of type {type(batch).__name__}")


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (CUDA, MPS) so that a wall-clock time measures it; no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def check_same_architecture(reference: nn.Module, model: nn.Module, what: str = "the returned network") -> None:
    """Raise a ValueError unless `model` has the state-dict keys and tensor shapes of `reference`."""
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected == found:
        return
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    reshaped = [f"{k} {found[k]} instead of {expected[k]}" for k in sorted(set(expected) & set(found))
                if expected[k] != found[k]]
    parts = [f"missing {', '.join(missing[:5])}" if missing else "", f"unexpected {', '.join(extra[:5])}" if extra
             else "", f"shapes {'; '.join(reshaped[:5])}" if reshaped else ""]
    raise ValueError(f"{what} does not have the original's architecture ({type(model).__name__} vs "
                     f"{type(reference).__name__}): " + "; ".join(p for p in parts if p))


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def num_classes_of(model: nn.Module) -> int:
    """The output size of the model's last linear layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"cannot tell the number of classes of {type(model).__name__}: it has no nn.Linear layer")
    return linears[-1].out_features


def labels_of(loader: DataLoader) -> np.ndarray:
    """Every label a loader yields (read from `dataset.age_group` when the dataset has it)."""
    labels = getattr(loader.dataset, "age_group", None)
    if labels is not None:
        return np.asarray(labels, dtype=np.int64)
    return np.concatenate([np.asarray(split_batch(batch)[1]) for batch in loader])


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> Tensor:
    """The challenge's class weights: `1 / count` per class (0 for a class without examples)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict(model: nn.Module, data: DataLoader | Dataset, device: str | torch.device | None = None,
            batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Logits `[N, C]` (float32, CPU) and labels `[N]` (int64, CPU) of `model` in eval mode, in data order.

    The one inference helper of the challenge track (accuracies, MIA losses, pool members' confidences).

    Args:
        model: The classifier; its training mode is restored afterwards.
        data: A loader, or a dataset read in order with `batch_size`. Batches are dicts or `(image, label)`.
        device: Where to run; the model is moved there (in place). Default: the model's own device.
        batch_size: Batch size when `data` is a dataset.
    """
    if device is not None:
        model.to(device)
    device = device_of(model)
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        images, targets = split_batch(batch)
        logits.append(model(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets).long().cpu())
    model.train(was_training)
    if not logits:
        return torch.zeros(0, num_classes_of(model)), torch.zeros(0, dtype=torch.int64)
    return torch.cat(logits), torch.cat(labels)


def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Share of examples whose arg-max prediction is the label (NaN for an empty loader)."""
    logits, labels = predict(model, loader)
    if len(labels) == 0:
        return float("nan")
    return (logits.argmax(1) == labels).float().mean().item()


def train_classifier(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    epochs: int = 30,
    lr: float = 1e-4,
    weight_decay: float = 5e-3,
    class_weights: str | Tensor | None = "balanced",
    keep_best: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train `model` in place with Adam, cosine annealing and (class-weighted) cross-entropy.

    Args:
        model: The classifier; trained on its own device.
        train_loader: Batches of `{"image", "age_group"}`.
        val_loader: Evaluated after every epoch; the best-accuracy weights are kept when `keep_best`.
        epochs: Training epochs (also the cosine period).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        class_weights: `"balanced"` (`1 / count` per class over the training labels), a `[C]` tensor, or None.
        keep_best: Restore the weights of the epoch with the best validation accuracy (ties: the earliest).
        seed: Seeds the batch order and any randomness of the model; the result depends only on it.
        progress: Print one line per epoch.

    Returns:
        The model (the same object) and a history with one dict per epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    device, num_classes = device_of(model), num_classes_of(model)
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced', a tensor or None, got {class_weights!r}")
        class_weights = balanced_class_weights(labels_of(train_loader), num_classes)
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history: list[dict[str, Any]] = []
    best_acc, best_state = -1.0, None
    with seeded(seed, train_loader):
        for epoch in range(epochs):
            start = time.perf_counter()
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for batch in train_loader:
                images, labels = (tensor.to(device) for tensor in split_batch(batch))
                logits = model(images)
                loss = F.cross_entropy(logits, labels, weight=weight)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss {loss.item()} in epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(labels)
                correct += (logits.argmax(1) == labels).sum().item()
                seen += len(labels)
            scheduler.step()
            record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
                      "lr": optimizer.param_groups[0]["lr"]}
            if val_loader is not None:
                record["val_acc"] = accuracy(model, val_loader)
                if keep_best and record["val_acc"] > best_acc:
                    best_acc = record["val_acc"]
                    best_state = copy.deepcopy(model.state_dict())
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            if progress:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                      flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history
