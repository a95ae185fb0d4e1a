"""Image-to-image model families behind one interface (`ImageToImageModel`).

The families (`unet`, `vqgan`, `mae`, `diffusion`) register their variants in `imgunlearn.registry.MODELS`
when first looked up. `EncoderDecoder` wraps a user's own encoder and decoder modules (`imgunlearn.models.adapter`).
"""

from imgunlearn.models.adapter import EncoderDecoder
from imgunlearn.models.base import ImageToImageModel, Latent, create_model, list_models, load_model

__all__ = ["EncoderDecoder", "ImageToImageModel", "Latent", "create_model", "list_models", "load_model"]
