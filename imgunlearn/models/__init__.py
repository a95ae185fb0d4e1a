"""Image-to-image model families behind one interface (`ImageToImageModel`).

The families (`unet`, `vqgan`, `mae`, `diffusion`) register their variants in `imgunlearn.registry.MODELS`
when first looked up.
"""

from imgunlearn.models.base import ImageToImageModel, Latent, create_model, list_models, load_model

__all__ = ["ImageToImageModel", "Latent", "create_model", "list_models", "load_model"]
