"""The two membership-inference figures against direct transcriptions of the procedures they claim to follow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.svm import SVC
from torch.utils.data import DataLoader, Subset

from imgunlearn.challenge.data import FaceAgeDataset
from imgunlearn.challenge.mia import loss_mia_accuracy, mia_figures, svc_mia_efficacy
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces


def kit_loss_mia(forget_losses, test_losses, n_splits=10, random_state=0):
    """The starting kit's MIA on balanced inputs: test losses (label 0) then forget losses (label 1), a default
    logistic regression fitted and scored on each split of a stratified shuffle split, the mean accuracy."""
    samples = np.concatenate([test_losses, forget_losses]).reshape(-1, 1)
    labels = np.array([0] * len(test_losses) + [1] * len(forget_losses))
    scores = []
    for train, held_out in StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state).split(samples, labels):
        model = LogisticRegression().fit(samples[train], labels[train])
        scores.append(np.mean(model.predict(samples[held_out]) == labels[held_out]))
    return float(np.mean(scores))


def svc_efficacy(retain_conf, test_conf, forget_conf):
    """Unlearn-Sparse's MIA efficacy on balanced inputs: an RBF SVC (C = 3, gamma "auto") fitted on retain (1) vs
    test (0) true-label confidences; the share of forget examples it calls non-members."""
    features = np.concatenate([retain_conf, test_conf]).reshape(-1, 1)
    labels = np.array([1] * len(retain_conf) + [0] * len(test_conf))
    predicted = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels).predict(forget_conf.reshape(-1, 1))
    return float(np.mean(predicted == 0))


def test_loss_mia_matches_the_kit_on_balanced_losses():
    rng = np.random.default_rng(0)
    forget = rng.gamma(2.0, 0.3, 60)
    test = rng.gamma(2.0, 0.6, 60)  # unseen examples: higher losses
    got = loss_mia_accuracy(forget, test)
    assert got == pytest.approx(kit_loss_mia(forget, test), abs=1e-12)
    assert got > 0.6  # the losses differ, so the attacker does better than chance
    assert loss_mia_accuracy(forget, test, seed=3) == pytest.approx(kit_loss_mia(forget, test, random_state=3),
                                                                     abs=1e-12)


def test_loss_mia_subsamples_the_larger_set():
    rng = np.random.default_rng(1)
    separable = loss_mia_accuracy(rng.uniform(0, 0.1, 200), rng.uniform(5, 6, 40))
    assert separable == 1.0  # any balanced subsample of perfectly separated losses is classified perfectly
    same = loss_mia_accuracy(rng.normal(1, 0.2, 300), rng.normal(1, 0.2, 300))
    assert abs(same - 0.5) < 0.1
    with pytest.raises(ValueError, match="at least 5 forget and 5 test examples"):
        loss_mia_accuracy(np.ones(4), np.ones(40))


def test_svc_efficacy_matches_the_transcription():
    rng = np.random.default_rng(2)
    retain = rng.beta(8, 1, 80)  # members: confident
    test = rng.beta(3, 2, 80)
    forget = np.concatenate([rng.beta(8, 1, 30), rng.beta(3, 2, 30)])  # half look like members
    got = svc_mia_efficacy(retain, test, forget)
    assert got == pytest.approx(svc_efficacy(retain, test, forget), abs=1e-12)
    assert 0.25 < got < 0.75
    # Capped: the SVC trains on `max_per_class` members and non-members drawn at random.
    assert svc_mia_efficacy(retain, test, rng.beta(8, 1, 40), max_per_class=50) < 0.5


def test_mia_figures_of_a_model_match_the_transcriptions():
    dataset = FaceAgeDataset.from_faces(generate_faces(12, images_per_person=5, size=16, seed=0))
    model = create_classifier("cnn_tiny", seed=0).eval()
    retain, forget, test = (DataLoader(Subset(dataset, range(a, b)), batch_size=16) for a, b in
                            ((0, 20), (20, 40), (40, 60)))  # equal sizes: nothing is subsampled

    def losses(loader):  # per example, from the definition
        values = []
        with torch.no_grad():
            for batch in loader:
                for image, label in zip(batch["image"], batch["age_group"], strict=True):
                    logits = model(image[None]).double()[0]
                    values.append(-(logits[label] - torch.logsumexp(logits, 0)).item())
        return np.array(values)

    forget_loss, test_loss, retain_loss = losses(forget), losses(test), losses(retain)
    figures = mia_figures(model, retain, forget, test)
    assert figures["mia_loss_accuracy"] == pytest.approx(kit_loss_mia(forget_loss, test_loss), abs=1e-12)
    expected = svc_efficacy(np.exp(-retain_loss), np.exp(-test_loss), np.exp(-forget_loss))
    assert figures["mia_svc_efficacy"] == pytest.approx(expected, abs=1e-12)
    assert all(math.isfinite(v) for v in figures.values())
