"""The distinctive steps of the Kaggle top-entry recipes, each checked against its definition."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.data import FaceAgeDataset
from imgunlearn.challenge.methods import ResetNoiseFinetune
from imgunlearn.challenge.methods.base import conv_layers, scaled_gradients
from imgunlearn.challenge.methods.conv_transpose_finetune import transpose_kernels
from imgunlearn.challenge.methods.forget_contrast import forget_contrast_loss, uniform_kl
from imgunlearn.challenge.methods.prune_reinit_distill import prunable, prune_and_redraw
from imgunlearn.challenge.methods.reset_noise_finetune import split_norm_parameters
from imgunlearn.challenge.methods.saliency_reinit import least_salient, triangle
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces


@pytest.fixture
def net():
    return create_classifier("cnn_tiny", seed=0)


def test_transpose_kernels_swaps_the_spatial_axes_only(net):
    before = copy.deepcopy(net)
    transpose_kernels(net)
    for new, old in zip(conv_layers(net), conv_layers(before), strict=True):
        for y in range(3):
            for x in range(3):
                assert torch.equal(new.weight[:, :, y, x], old.weight[:, :, x, y])
    assert torch.equal(net.fc.weight, before.fc.weight)
    with pytest.raises(ValueError, match="must be square"):
        transpose_kernels(nn.Sequential(nn.Conv2d(3, 4, (3, 1))))


def test_prune_and_redraw_replaces_the_smallest_magnitudes(net):
    before = {id(getattr(m, name)): getattr(m, name).detach().clone() for m, name in prunable(net)}
    torch.manual_seed(0)
    masks = prune_and_redraw(net, 0.9)
    pruned, kept = [], []
    for module, name in prunable(net):
        p, mask, old = getattr(module, name), masks[getattr(module, name)], before[id(getattr(module, name))]
        pruned.append(old[mask].abs())
        kept.append(old[~mask].abs())
        assert torch.equal(p[~mask], old[~mask])  # kept exactly
        if name == "weight":
            assert (p[mask].abs() <= 1 / math.sqrt(p[0].numel())).all()
        else:
            assert (p[mask] == 0).all()
    pruned, kept = torch.cat(pruned), torch.cat(kept)
    assert pruned.numel() / (pruned.numel() + kept.numel()) == pytest.approx(0.9, abs=1e-3)
    assert pruned.max() <= kept.min()  # one global threshold: every kept value is at least every pruned one


def test_least_salient_and_the_triangle_schedule():
    saliency = torch.tensor([[0.5, -0.1], [2.0, -0.05]])
    assert torch.equal(least_salient(saliency, 0.5), torch.tensor([[False, True], [False, True]]))
    assert not least_salient(saliency, 0.0).any()
    assert triangle(5) == pytest.approx([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])
    assert triangle(1) == [1.0]


def test_scaled_gradients_scale_each_element_then_stop():
    weight = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    scale = torch.tensor([1.0, 0.1, 0.0])
    with scaled_gradients({weight: scale}):
        (weight**2).sum().backward()
    assert torch.allclose(weight.grad, 2 * weight.detach() * scale)
    weight.grad = None
    (weight**2).sum().backward()  # the hook is gone
    assert torch.allclose(weight.grad, 2 * weight.detach())


def test_forget_contrast_losses_match_their_formulas():
    torch.manual_seed(0)
    forget, retain, t = torch.randn(3, 5), torch.randn(4, 5), 1.15
    expected = 0.0
    for i in range(3):
        scores = [float(forget[i] @ retain[j]) / t for j in range(4)]
        log_norm = math.log(sum(math.exp(s) for s in scores))
        expected += sum(log_norm - s for s in scores)
    assert forget_contrast_loss(forget, retain, t).item() == pytest.approx(expected / 12, rel=1e-5)
    logits = torch.randn(6, 10)
    uniform = sum(sum(0.1 * (math.log(0.1) - v) for v in F.log_softmax(row, 0).tolist()) for row in logits) / 6
    assert uniform_kl(logits).item() == pytest.approx(uniform, rel=1e-5)


def test_reset_noise_finetune_stages_train_only_the_drawn_tensors(net):
    dataset = FaceAgeDataset.from_faces(generate_faces(8, images_per_person=4, size=16, seed=0))
    loader = DataLoader(dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    weights, norms = split_norm_parameters(net)
    assert len(weights) == 6 and len(norms) == 8  # 4 convs + head weight and bias; 4 batch norms × 2
    before = copy.deepcopy(net)
    ResetNoiseFinetune(stage_epochs=1, reset_epochs=1, layer_share=0.2, fine_epochs=0, seed=0)(
        net, loader, loader, None)
    moved = [not torch.equal(a, b) for a, b in zip(split_norm_parameters(net)[0], split_norm_parameters(before)[0],
                                                    strict=True)]
    assert moved[-2:] == [True, True]  # the reset head
    assert sum(moved[:-2]) <= 1  # at most the one drawn tensor among the convs
