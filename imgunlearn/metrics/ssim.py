"""`SSIM`: structural similarity over the whole image, the hidden pixels or the forget content.

The whole-image value follows Wang et al. (2004) as `skimage.metrics.structural_similarity` computes it with
`gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1`: an 11-tap Gaussian window,
the map averaged over the pixels whose window lies inside the image, then over channels.

A selection that is a box (a centred inpainting hole, a face box) is cropped out of both images and scored
as an image of its own; the window shrinks to fit the crop (odd side, at least 7 px; a crop smaller than
7 px is first resized up to 7 px). Any other selection (outpainting borders, scattered holes) averages the
full image's SSIM map (reflect-padded so every pixel has a value) over the selected pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from imgunlearn.metrics.regions import RegionMetric, bounding_box, check_pair, fills_box, selection

WIN_SIZE = 11
MIN_WIN_SIZE = 7
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(win_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian of `win_size` taps; sigma 1.5 at 11 taps, scaled with the radius."""
    radius = (win_size - 1) // 2
    sigma = 1.5 * radius / 5.0
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _band(window: Tensor, size: int) -> Tensor:
    """`[size - k + 1, size]` matrix whose rows slide the `k`-tap window: a valid 1-D filter as a matmul."""
    k = window.numel()
    rows = torch.arange(size - k + 1, device=window.device)
    band = torch.zeros(size - k + 1, size, dtype=window.dtype, device=window.device)
    band[rows[:, None], rows[:, None] + torch.arange(k, device=window.device)] = window
    return band


def _filter(x: Tensor, window: Tensor, pad: bool) -> Tensor:
    """Separable Gaussian filter of `[B, C, H, W]`, per channel; `pad` reflects so the size is kept.

    The two 1-D passes are matmuls with banded matrices, faster on CPU than grouped convolutions.
    """
    r = (window.numel() - 1) // 2
    if pad:
        x = F.pad(x, (r, r, r, r), mode="reflect")
    h, w = x.shape[-2:]
    return _band(window, h) @ x @ _band(window, w).T  # [B, C, H - 2r, W - 2r]


def ssim_map(preds: Tensor, target: Tensor, win_size: int = WIN_SIZE, pad: bool = False) -> Tensor:
    """Per-pixel, per-channel SSIM of two `[B, C, H, W]` images in [0, 1].

    Without `pad` the map covers only pixels whose whole window lies inside the image
    (`[B, C, H - win_size + 1, W - win_size + 1]`); with `pad` it keeps the input's size.
    """
    window = gaussian_window(win_size, preds.dtype, preds.device)
    stacked = torch.cat([preds, target, preds * preds, target * target, preds * target], dim=1)  # [B, 5C, H, W]
    mx, my, mxx, myy, mxy = _filter(stacked, window, pad).chunk(5, dim=1)
    vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    return ((2 * mx * my + C1) * (2 * vxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))


def ssim(preds: Tensor, target: Tensor, win_size: int = WIN_SIZE) -> Tensor:
    """Whole-image SSIM per image, `[B]` (the skimage-compatible value described in the module docstring)."""
    check_pair(preds, target)
    if min(preds.shape[-2:]) < win_size:
        raise ValueError(f"images {tuple(preds.shape[-2:])} are smaller than the SSIM window {win_size}")
    return ssim_map(preds, target, win_size).mean(dim=(1, 2, 3))


def crop_ssim(preds: Tensor, target: Tensor) -> Tensor:
    """SSIM per image of crops `[B, C, h, w]` with a window fitted to the crop (see the module docstring)."""
    h, w = preds.shape[-2:]
    side = min(h, w)
    if side < MIN_WIN_SIZE:
        scale = MIN_WIN_SIZE / side
        size = (max(MIN_WIN_SIZE, round(h * scale)), max(MIN_WIN_SIZE, round(w * scale)))
        preds = F.interpolate(preds, size=size, mode="bilinear", align_corners=False)
        target = F.interpolate(target, size=size, mode="bilinear", align_corners=False)
        side = MIN_WIN_SIZE
    win_size = min(WIN_SIZE, side if side % 2 else side - 1)
    return ssim(preds, target, win_size)


class SSIM(RegionMetric):
    """Mean over images of the structural similarity (1 = identical structure, 0 = unrelated).

    Args:
        pixels: `"image"`, `"mask"` (hidden pixels) or `"forget"` (the forget content, e.g. the face box).
            Images with no selected pixel are skipped; with none at all `compute` gives NaN.
    """

    higher_is_better = True

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None,
               forget_mask: Tensor | None = None) -> None:
        """Add a batch of outputs `preds` and ground truths `target`, both `[B, C, H, W]` in [0, 1].

        SSIM is computed in the inputs' floating dtype (float32 images give float32 maps) and summed in float64.
        """
        check_pair(preds, target)
        if not preds.is_floating_point():
            preds, target = preds.float(), target.float()
        if self.pixels == "image":
            self._add(ssim(preds, target))
            return
        selected = (selection(self.pixels, preds, mask, forget_mask)[:, 0] > 0).cpu().numpy()  # [B, H, W] bool
        crops: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int]]]] = {}
        for i in range(preds.shape[0]):
            box = bounding_box(selected[i])
            if box is None:
                continue
            if fills_box(selected[i], box):  # crops of one shape are scored as one batch
                crops.setdefault((box[2] - box[0], box[3] - box[1]), []).append((i, box))
            else:
                full = ssim_map(preds[i : i + 1], target[i : i + 1], pad=True).mean(dim=1)[0]  # [H, W]
                self._add(full[torch.from_numpy(selected[i]).to(full.device)].mean()[None])
        for group in crops.values():
            p = torch.stack([preds[i, :, top:bottom, left:right] for i, (top, left, bottom, right) in group])
            q = torch.stack([target[i, :, top:bottom, left:right] for i, (top, left, bottom, right) in group])
            self._add(crop_ssim(p, q))  # p, q: [G, C, h, w]
