"""Two membership-inference checks of a classifier after unlearning.

- `loss_mia_accuracy` (the challenge starting kit's check): a logistic regression tries to tell forget examples
  (members of the original training set) from test examples (never seen) by their per-example loss. The two
  sets are balanced by subsampling the larger one (the kit subsamples the forget set with NumPy's global
  RNG; here a seeded generator); the figure is the mean accuracy of the kit's `simple_mia`: a default
  `LogisticRegression` scored by `cross_val_score` over a 10-split `StratifiedShuffleSplit`, test losses first. **About 0.5 is ideal** (the attacker cannot tell forget from unseen examples); well above 0.5
  means the forget set still looks like training data. Below 0.5 is as informative as above (the forget
  losses are unusually *high*). In the challenge's split the test set shares people with the retain set, so a
  model retrained without the forget people finds them *harder* than the test images and scores well above 0.5
  too: compare with the retrained model's value, not only with 0.5.
- `svc_mia_efficacy` (the "MIA efficacy" of Unlearn-Sparse, Jia et al. 2023, and SalUn, Fan et al. 2024): an
  RBF support-vector classifier learns members from non-members on the confidence of the true label
  (retain examples as members, test examples as non-members, balanced); the figure is the share of forget
  examples it calls *non-members*. **Higher means more forgetting**; the target is the value a model retrained
  without the forget set gets (not 1: a retrained model still generalises to many forget examples).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.training import predict


def per_example_losses(model: nn.Module, loader: DataLoader) -> np.ndarray:
    """Cross-entropy of every example (float64 `[N]`), in loader order, the model in eval mode."""
    logits, labels = predict(model, loader)
    return F.cross_entropy(logits.double(), labels, reduction="none").numpy()


def true_label_confidence(model: nn.Module, loader: DataLoader) -> np.ndarray:
    """Softmax probability of the true label for every example (float64 `[N]`)."""
    logits, labels = predict(model, loader)
    probs = torch.softmax(logits.double(), dim=1)
    return probs.gather(1, labels[:, None])[:, 0].numpy()


def _balance(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
             max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subsample at random each array longer than the smaller size (and than `max_per_class`); keep the others.

    An array already of the target size is returned unchanged, in its order, as the starting kit does.
    """
    n = min(len(a), len(b)) if max_per_class is None else min(len(a), len(b), max_per_class)
    return tuple(x if len(x) == n else rng.permutation(x)[:n] for x in (a, b))


def loss_mia_accuracy(forget_losses: np.ndarray, test_losses: np.ndarray, n_splits: int = 10,
                      seed: int = 0) -> float:
    """Mean cross-validated accuracy of a logistic regression telling forget (1) from test (0) by loss.

    Args:
        forget_losses: Per-example losses on the forget set.
        test_losses: Per-example losses on the test set.
        n_splits: Folds of the stratified shuffle split.
        seed: Seeds the balancing subsample and the splits.

    Returns:
        The mean accuracy; about 0.5 is ideal.
    """
    rng = np.random.default_rng(seed)
    forget, test = _balance(np.asarray(forget_losses, np.float64), np.asarray(test_losses, np.float64), rng)
    if len(forget) < 5:
        raise ValueError(f"need at least 5 forget and 5 test examples for the loss MIA, got {len(forget)} after "
                         "balancing")
    features = np.concatenate([test, forget])[:, None]  # [2n, 1], test first as in the starting kit
    members = np.concatenate([np.zeros(len(test)), np.ones(len(forget))])
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed)
    scores = cross_val_score(LogisticRegression(), features, members, cv=cv, scoring="accuracy")
    return float(np.mean(scores))


def svc_mia_efficacy(retain_confidence: np.ndarray, test_confidence: np.ndarray, forget_confidence: np.ndarray,
                     max_per_class: int = 2000, seed: int = 0) -> float:
    """Share of forget examples an RBF SVC, trained on retain (members) vs test (non-members), calls non-members.

    Args:
        retain_confidence: True-label confidence of retain examples (members).
        test_confidence: True-label confidence of test examples (non-members).
        forget_confidence: True-label confidence of the forget examples to classify.
        max_per_class: Cap on the members and non-members used to train the SVC (it scales quadratically).
        seed: Seeds the balancing subsample.

    Returns:
        The MIA efficacy in [0, 1]; higher means more forgetting, the retrained model's value is the target.
    """
    rng = np.random.default_rng(seed)
    retain, test = _balance(np.asarray(retain_confidence, np.float64), np.asarray(test_confidence, np.float64),
                            rng, max_per_class)
    if len(retain) == 0 or len(forget_confidence) == 0:
        raise ValueError("the SVC MIA needs retain, test and forget examples")
    features = np.concatenate([retain, test])[:, None]  # [2n, 1]
    members = np.concatenate([np.ones(len(retain)), np.zeros(len(test))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(features, members)
    predicted = clf.predict(np.asarray(forget_confidence, np.float64)[:, None])
    return float(1.0 - predicted.mean())


def mia_figures(model: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader, test_loader: DataLoader,
                seed: int = 0) -> dict[str, float]:
    """Both checks for one model: `{"mia_loss_accuracy": ..., "mia_svc_efficacy": ...}`.

    Loaders may shuffle: only each set's distribution matters, not the order.
    """
    forget_loss, test_loss = per_example_losses(model, forget_loader), per_example_losses(model, test_loader)
    return {
        "mia_loss_accuracy": loss_mia_accuracy(forget_loss, test_loss, seed=seed),
        "mia_svc_efficacy": svc_mia_efficacy(true_label_confidence(model, retain_loader), np.exp(-test_loss),
                                             np.exp(-forget_loss), seed=seed),
    }
