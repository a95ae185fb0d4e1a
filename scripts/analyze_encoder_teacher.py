"""Which feature maps does an encoder-only unlearning run move, on forget and on retain images?

For an original and an encoder-unlearned model (same decoder) it reports per encoder feature map, on held-out
tiles of the demo data:

- forget progress: `|E(x_f) - T|² / |E0(x_f) - T|²` inside the face box, where T is the original's encoding of
  the forget target (noise or flat image in the box): 0 = the map reached its target, 1 = it did not move;
- retain drift: `|E(x_r) - E0(x_r)|² / |E0(x_r)|²`: how much the map changed where nothing should change;
- the effective receptive field of the map (the input square holding 90% of its centre feature's gradient),
  which bounds how much context the encoder has to tell a face from a roof.

Compare `unet_small` with `unet_small_noskip0`, whose decoder reads no full-resolution (5-pixel) map. Models
saved from your own `EncoderDecoder` need `--trust-class-path`.

    python scripts/analyze_encoder_teacher.py runs/bench_i2i/unet_small/original \
        runs/bench_i2i/unet_small/methods/encoder_teacher --target normal
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from imgunlearn.api import load_task
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods.encoder_teacher import as_maps
from imgunlearn.methods.targets import confine, masking_target
from imgunlearn.models import load_model


def batch_of(dataset, n: int) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("image", "input", "mask", "forget_mask")}


def effective_side(weight: torch.Tensor, share: float = 0.9) -> int:
    """Side of the smallest square around the centre of `weight` (`[H, W]`, non-negative) that holds `share` of it."""
    h, w = weight.shape
    total = weight.sum()
    for side in range(1, max(h, w) + 1):
        top, left = max(h // 2 - side // 2, 0), max(w // 2 - side // 2, 0)
        if weight[top:top + side, left:left + side].sum() >= share * total:
            return side
    return max(h, w)


def receptive_fields(model, image: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Per encoder map: the effective receptive field of its centre feature, the side of the input square that holds
    90% of the feature's gradient above its median (normalisation layers make every pixel count a little, about
    equally); measured, so it holds for any family; "-" for token maps."""
    image = image[:1].clone().requires_grad_(True)
    fields = []
    for feature in as_maps(model.encode(image, mask[:1])):
        if feature.ndim != 4:
            fields.append("-")
            continue
        grad, = torch.autograd.grad(feature[:, :, feature.shape[-2] // 2, feature.shape[-1] // 2].sum(), image,
                                    retain_graph=True)
        weight = grad.abs().sum(dim=(0, 1))  # [H, W]: how much each input pixel moves the centre feature
        fields.append(f"{effective_side((weight - weight.median()).clamp_min(0))} px")
    return fields


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original")
    parser.add_argument("unlearned")
    parser.add_argument("--target", default="normal", help="forget target the run used")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--trust-class-path", action="store_true",
                        help="load models whose config names classes to import (your own EncoderDecoder)")
    args = parser.parse_args()
    trust = args.trust_class_path
    original = load_model(args.original, trust_class_path=trust)
    unlearned, task = load_model(args.unlearned, trust_class_path=trust), load_task(args.original)
    data = ForgetRetainDataModule(source="synthetic", task=task, seed=0)
    data.setup("fit")
    forget, retain = batch_of(data.split_dataset("forget_holdout"), args.count), batch_of(
        data.split_dataset("retain_holdout"), args.count)
    target = confine(masking_target(args.target, forget["image"], torch.Generator().manual_seed(0)),
                     forget["image"], forget["forget_mask"])
    t_maps = as_maps(original.encode(task.degrade(target, forget["mask"], torch.Generator().manual_seed(1)),
                                     forget["mask"]))
    o_f, u_f = as_maps(original.encode(forget["input"], forget["mask"])), as_maps(unlearned.encode(forget["input"], forget["mask"]))
    o_r, u_r = as_maps(original.encode(retain["input"], retain["mask"])), as_maps(unlearned.encode(retain["input"], retain["mask"]))
    with torch.enable_grad():
        fields = receptive_fields(original, forget["input"], forget["mask"])
    print("| map | shape | receptive field | forget progress in the box (0 = at target) | retain drift |")
    print("|---|---|---|---|---|")
    for i, (t, of, uf, orr, ur) in enumerate(zip(t_maps, o_f, u_f, o_r, u_r, strict=True)):
        box = F.interpolate(forget["forget_mask"], size=t.shape[-2:], mode="area") if t.ndim == 4 else torch.ones(1)
        progress = (((uf - t) ** 2) * box).sum() / (((of - t) ** 2) * box).sum().clamp_min(1e-12)
        drift = ((ur - orr) ** 2).sum() / (orr**2).sum().clamp_min(1e-12)
        print(f"| {i} | {tuple(t.shape[1:])} | {fields[i]} | {progress:.3f} | {drift:.4f} |")


if __name__ == "__main__":
    main()
