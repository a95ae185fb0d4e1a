"""How many codebook entries a saved VQ-GAN picks on the embedded survey's held-out tiles (codebook collapse check).

    python scripts/vq_code_usage.py runs/original_cache/<key>/original

Prints the number of codes picked at least once over the held-out retain and forget tiles (restoration inputs:
σ 0.1 noise, fixed seed) and the perplexity of the picks (exp of their entropy; the codebook size when every
code is picked equally often).
"""

from __future__ import annotations

import argparse

import torch

from imgunlearn.data.synthetic import generate_survey
from imgunlearn.models.base import load_model
from imgunlearn.models.vqgan import VQGAN


def code_usage(model: VQGAN, images: torch.Tensor, batch: int = 50) -> tuple[int, float]:
    """(codes picked at least once, perplexity of the picks) over `images` `[N, 3, H, W]` in [0, 1]."""
    counts = torch.zeros(model.config["num_vq_embeddings"])
    with torch.no_grad():
        for chunk in images.split(batch):
            latent = model.encode(chunk, torch.zeros_like(chunk[:, :1]))
            _, _, (_, _, codes) = model.vq.quantize(latent)
            counts += torch.bincount(codes.flatten(), minlength=counts.numel()).float()
    share = counts[counts > 0] / counts.sum()
    return int((counts > 0).sum()), float(torch.exp(-(share * share.log()).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("original", help="a saved VQ-GAN (a folder with config.json and model.safetensors)")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    model = load_model(args.original).eval()
    if not isinstance(model, VQGAN):
        raise SystemExit(f"{args.original} holds a {type(model).__name__}, not a VQ-GAN")
    survey = generate_survey(200, 800, 100, 100, size=args.size, seed=0)
    clean = torch.cat([torch.as_tensor(survey[s].images) for s in ("retain_holdout", "forget_holdout")]).float() / 255
    generator = torch.Generator().manual_seed(0)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    used, perplexity = code_usage(model, noisy)
    print(f"{args.original}: {used} of {model.config['num_vq_embeddings']} codes picked, perplexity {perplexity:.1f}")


if __name__ == "__main__":
    main()
