"""FID / KID / Inception Score / embedding cosine against direct NumPy / SciPy computations, offline."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from imgunlearn.metrics import (
    FID,
    KID,
    LPIPS,
    EmbeddingCosine,
    FeatureUnavailableError,
    InceptionScore,
    RandomConvFeatures,
    StatsFeatures,
    build_feature_extractor,
    sharing,
)


class PoolFeatures(nn.Module):
    """A tiny deterministic extractor: 4×4 average pooling of the channels -> 48 numbers."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # [B, 48]


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 5)
        with torch.no_grad():
            self.head.weight.copy_(torch.arange(15.0).view(5, 3) / 3 - 2)
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)) * 4)  # [B, 5] logits


def images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 16, 16, generator=g) * 0.8 + shift).clamp(0, 1)


def numpy_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def numpy_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())


def test_fid_of_a_set_against_itself_is_zero():
    x = images(40, 0)
    metric = FID(feature=PoolFeatures())
    metric.update(x, x)
    assert abs(metric.compute().item()) < 1e-6


def test_fid_matches_scipy_frechet_distance():
    feature = PoolFeatures()
    preds, target = images(80, 1, shift=0.1), images(80, 2)
    metric = FID(feature=feature)
    metric.update(preds[:50], target[:50])
    metric.update(preds[50:], target[50:])
    expected = numpy_fid(feature(preds).double().numpy(), feature(target).double().numpy())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    assert expected > 0.01


def test_kid_matches_direct_mmd_and_is_near_zero_on_one_distribution():
    feature = PoolFeatures()
    preds, target = images(30, 3, shift=0.15), images(30, 4)
    metric = KID(feature=feature, subsets=3, subset_size=100)  # subsets are the whole sets
    metric.update(preds, target)
    expected = numpy_mmd(feature(preds).double().numpy(), feature(target).double().numpy())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-9)
    assert expected > 0.005
    same = KID(feature=feature, subsets=20, subset_size=50, seed=1)
    same.update(images(200, 5), images(200, 6))
    assert abs(same.compute().item()) < 0.2 * expected


def test_inception_score_matches_direct_formula():
    x = images(12, 7)
    classifier = TinyClassifier()
    metric = InceptionScore(feature=classifier, splits=2)
    metric.update(x)
    p = torch.softmax(classifier(x).double(), dim=1).numpy()
    scores = []
    for part in (p[:6], p[6:]):
        marginal = part.mean(0)
        scores.append(np.exp(np.mean((part * (np.log(part) - np.log(marginal))).sum(1))))
    assert metric.compute().item() == pytest.approx(np.mean(scores), rel=1e-9)
    assert metric.compute().item() > 1.0


def test_embedding_cosine_is_mean_of_pairwise_cosines():
    feature = PoolFeatures()
    preds, target = images(10, 8), images(10, 9)
    metric = EmbeddingCosine(feature=feature)
    metric.update(preds, target)
    a, b = feature(preds).double().numpy(), feature(target).double().numpy()
    expected = np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
    assert metric.compute().item() == pytest.approx(expected, rel=1e-9)
    identical = EmbeddingCosine(feature=feature)
    identical.update(target, target)
    assert identical.compute().item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["stats", "random_conv"])
def test_offline_extractors_are_deterministic_and_separate_degradations(name):
    x = images(6, 10)
    first, second = build_feature_extractor(name), build_feature_extractor(name)
    torch.testing.assert_close(first(x), second(x))
    close = (x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    far = torch.full_like(x, 0.5)
    metric_close, metric_far = EmbeddingCosine(feature=name), EmbeddingCosine(feature=name)
    metric_close.update(close, x)
    metric_far.update(far, x)
    assert metric_close.compute() > metric_far.compute() + 0.1


def test_stats_features_shape_and_size_independence():
    extractor = StatsFeatures()
    assert extractor(images(2, 11)).shape == (2, extractor.dim)
    big = torch.nn.functional.interpolate(images(2, 11), size=(64, 64), mode="nearest")
    assert extractor(big).shape == (2, extractor.dim)
    assert RandomConvFeatures(seed=1)(big).shape == (2, RandomConvFeatures(seed=1).dim)


def test_torchscript_path_extractor(tmp_path):
    path = tmp_path / "pool.pt"
    torch.jit.save(torch.jit.script(PoolFeatures()), str(path))
    x = images(5, 12)
    metric = FID(feature=str(path))
    metric.update(x, x)
    assert abs(metric.compute().item()) < 1e-6


def test_exported_program_extractor(tmp_path):
    path = tmp_path / "pool.pt2"
    batch = torch.export.Dim("batch", min=2)
    torch.export.save(torch.export.export(PoolFeatures(), (images(3, 0),), dynamic_shapes={"x": {0: batch}}), str(path))
    x = images(5, 12)
    extractor = build_feature_extractor(path)
    torch.testing.assert_close(extractor(x), PoolFeatures()(x))


def test_missing_extractors_raise_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty weights cache
    with pytest.raises(FeatureUnavailableError, match="inception|Inception"):
        FID(feature="inception")
    with pytest.raises(FeatureUnavailableError, match="clip"):
        EmbeddingCosine(feature="clip")
    with pytest.raises(FeatureUnavailableError, match="LPIPS"):
        LPIPS()
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        FID(feature=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown feature 'incepton'"):
        KID(feature="incepton")
    with pytest.raises(ValueError, match="no class logits"):
        InceptionScore(feature="stats")


def test_too_few_images_raise():
    metric = FID(feature=PoolFeatures())
    metric.update(images(1, 0), images(1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        metric.compute()


def test_extractor_reuses_features_only_inside_an_explicit_sharing_block():
    calls = []

    class Counting(nn.Module):
        def forward(self, x):
            calls.append(1)
            return x.mean(dim=(2, 3))

    extractor = build_feature_extractor(Counting())
    x = images(2, 0)
    with sharing(extractor, None):
        first = extractor(x)
        assert extractor(x) is first and len(calls) == 1
        extractor(x.clone())  # another tensor with the same values is embedded again
        assert len(calls) == 2
    x.mul_(0.5)  # outside a block nothing is remembered: the changed tensor is embedded again
    torch.testing.assert_close(extractor(x), first * 0.5)
    assert len(calls) == 3
    extractor(x)
    assert len(calls) == 4


def former_fid(preds: torch.Tensor, target: torch.Tensor) -> float:
    """The library's FID before it used torchmetrics: centred covariances and `eigh` of `Σ1^½ Σ2 Σ1^½` (float64)."""

    def moments(features):
        features = features.double()
        mean = features.mean(dim=0)
        centred = features - mean
        return mean, centred.T @ centred / (features.shape[0] - 1)

    (mu1, sigma1), (mu2, sigma2) = moments(preds), moments(target)
    w, v = torch.linalg.eigh(sigma1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = root1 @ sigma2 @ root1
    trace_root = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_root)


@pytest.mark.parametrize("feature", ["stats", "random_conv"])
@pytest.mark.parametrize("n", [8, 40])
def test_fid_on_torchmetrics_matches_the_former_implementation(feature, n):
    """Same inputs, same extractor: the torchmetrics-based FID gives the former values (N below and above D)."""
    preds, target = images(n, 20, shift=0.1), images(n, 21)
    metric = FID(feature=feature)
    half = n // 2
    metric.update(preds[:half], target[:half])
    metric.update(preds[half:], target[half:])
    value = metric.compute()
    extractor = build_feature_extractor(feature)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(former_fid(extractor(preds), extractor(target)), rel=1e-6)


def test_fid_states_take_the_width_of_the_first_batch_and_survive_reset():
    metric = FID(feature=PoolFeatures())
    x = images(6, 3)
    metric.update(x, images(6, 4))
    assert metric.real_features_cov_sum.shape == (48, 48)
    first = metric.compute()
    metric.reset()
    assert metric.real_features_cov_sum.shape == (48, 48) and int(metric.real_features_num_samples) == 0
    metric.update(x, images(6, 4))
    assert torch.equal(metric.compute(), first)
