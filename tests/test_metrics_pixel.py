"""PSNR / SSIM / MSE against skimage and manual computations, per pixel selection."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from imgunlearn.metrics import MSE, PSNR, SSIM, ssim


def pair(n=3, size=32, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, size, size, generator=g, dtype=torch.float64)
    preds = (target + noise * torch.randn(target.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return preds, target


def sk_ssim(a, b):
    return structural_similarity(a.numpy(), b.numpy(), channel_axis=0, data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)


def centred_box(n, size, lo, hi):
    mask = torch.zeros(n, 1, size, size, dtype=torch.float64)
    mask[:, :, lo:hi, lo:hi] = 1
    return mask


def test_psnr_and_mse_match_skimage_on_whole_images():
    preds, target = pair()
    psnr, mse = PSNR(), MSE()
    psnr.update(preds[:2], target[:2])  # two batches accumulate
    psnr.update(preds[2:], target[2:])
    mse.update(preds, target)
    expected = np.mean([peak_signal_noise_ratio(target[i].numpy(), preds[i].numpy(), data_range=1.0) for i in range(3)])
    assert psnr.compute().item() == pytest.approx(expected, rel=1e-9)
    assert mse.compute().item() == pytest.approx(np.mean(((preds - target) ** 2).mean(dim=(1, 2, 3)).numpy()))


def test_psnr_known_value():
    target = torch.zeros(1, 3, 8, 8)
    preds = torch.full((1, 3, 8, 8), 0.1)  # MSE 0.01 -> 20 dB
    metric = PSNR()
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx(20.0)


def test_identical_images_give_finite_psnr_and_unit_ssim():
    _, target = pair(n=2)
    psnr, ssim_metric = PSNR(), SSIM()
    psnr.update(target, target)
    ssim_metric.update(target, target)
    assert psnr.compute().item() == pytest.approx(100.0)
    assert ssim_metric.compute().item() == pytest.approx(1.0)


def test_ssim_matches_skimage_on_whole_images():
    preds, target = pair(size=24, noise=0.2, seed=1)
    ours = ssim(preds, target)
    expected = [sk_ssim(preds[i], target[i]) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-7)
    metric = SSIM()
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx(np.mean(expected), rel=1e-7)


def test_forget_psnr_uses_only_forget_pixels():
    preds, target = pair(n=2, size=16, noise=0.05)
    forget_mask = centred_box(2, 16, 4, 12)
    preds = preds.clone()
    preds[:, :, :4] = 1 - target[:, :, :4]  # large errors outside the forget mask must not count
    metric = PSNR(pixels="forget")
    metric.update(preds, target, forget_mask=forget_mask)
    expected = []
    for i in range(2):
        diff = (preds[i, :, 4:12, 4:12] - target[i, :, 4:12, 4:12]) ** 2
        expected.append(10 * math.log10(1.0 / diff.mean().item()))
    assert metric.compute().item() == pytest.approx(np.mean(expected), rel=1e-9)
    whole = PSNR()
    whole.update(preds, target)
    assert whole.compute().item() < metric.compute().item() - 3


def test_mask_pixels_skip_images_without_hidden_pixels():
    preds, target = pair(n=2, size=16)
    mask = centred_box(2, 16, 4, 12)
    mask[1] = 0
    metric = MSE(pixels="mask")
    metric.update(preds, target, mask=mask)
    expected = ((preds[0, :, 4:12, 4:12] - target[0, :, 4:12, 4:12]) ** 2).mean().item()
    assert metric.compute().item() == pytest.approx(expected)
    empty = PSNR(pixels="mask")
    empty.update(preds, target, mask=torch.zeros_like(mask))
    assert math.isnan(empty.compute().item())


@pytest.mark.parametrize("lo,hi", [(8, 24), (13, 19), (14, 17)])  # 16 px box; 6 px; 3 px (resized to 7)
def test_forget_ssim_on_box_crop(lo, hi):
    preds, target = pair(n=2, size=32, noise=0.15, seed=2)
    forget_mask = centred_box(2, 32, lo, hi)
    metric = SSIM(pixels="forget")
    metric.update(preds, target, forget_mask=forget_mask)
    value = metric.compute().item()
    if hi - lo >= 11:  # a crop that fits the standard window equals skimage on the crop
        expected = np.mean([sk_ssim(preds[i, :, lo:hi, lo:hi], target[i, :, lo:hi, lo:hi]) for i in range(2)])
        assert value == pytest.approx(expected, rel=1e-7)
    assert -1.0 <= value < 1.0
    same = SSIM(pixels="forget")
    same.update(target, target, forget_mask=forget_mask)
    assert same.compute().item() == pytest.approx(1.0)


def test_mask_ssim_on_non_box_selection_averages_the_map():
    preds, target = pair(n=1, size=24, noise=0.1)
    borders = 1 - centred_box(1, 24, 6, 18)
    preds = preds.clone()
    preds[:, :, 6:18, 6:18] = target[:, :, 6:18, 6:18]  # the centre (not selected) is perfect
    metric = SSIM(pixels="mask")
    metric.update(preds, target, mask=borders)
    whole = SSIM()
    whole.update(preds, target)
    assert metric.compute().item() < whole.compute().item()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown pixels 'face'; known: image, mask, forget"):
        PSNR(pixels="face")
    preds, target = pair(n=1, size=16)
    with pytest.raises(ValueError, match="one shape"):
        PSNR().update(preds, target[:, :, :8])
    with pytest.raises(ValueError, match="needs the batch's 'mask'"):
        SSIM(pixels="mask").update(preds, target)
    with pytest.raises(ValueError, match="needs the batch's 'forget_mask'"):
        MSE(pixels="forget").update(preds, target)
