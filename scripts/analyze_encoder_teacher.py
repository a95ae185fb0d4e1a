"""Which feature maps does an encoder-only unlearning run move, on forget and on retain images?

For an original and an encoder-unlearned model (same decoder) it reports per encoder feature map, on held-out
tiles of the demo data:

- forget progress: `|E(x_f) - T|² / |E0(x_f) - T|²` inside the face box, where T is the original's encoding of
  the forget target (noise or flat image in the box): 0 = the map reached its target, 1 = it did not move;
- retain drift: `|E(x_r) - E0(x_r)|² / |E0(x_r)|²`: how much the map changed where nothing should change;
- the receptive field of the map, which bounds how much context the encoder has to tell a face from a roof.

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


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original")
    parser.add_argument("unlearned")
    parser.add_argument("--target", default="normal", help="forget target the run used")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    original, unlearned, task = load_model(args.original), load_model(args.unlearned), load_task(args.original)
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
    print("| map | shape | forget progress in the box (0 = at target) | retain drift |")
    print("|---|---|---|---|")
    for i, (t, of, uf, orr, ur) in enumerate(zip(t_maps, o_f, u_f, o_r, u_r, strict=True)):
        box = F.interpolate(forget["forget_mask"], size=t.shape[-2:], mode="area") if t.ndim == 4 else torch.ones(1)
        progress = (((uf - t) ** 2) * box).sum() / (((of - t) ** 2) * box).sum().clamp_min(1e-12)
        drift = ((ur - orr) ** 2).sum() / (orr**2).sum().clamp_min(1e-12)
        print(f"| {i} | {tuple(t.shape[1:])} | {progress:.3f} | {drift:.4f} |")


if __name__ == "__main__":
    main()
