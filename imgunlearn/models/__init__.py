"""Image-to-image model families behind one interface (`ImageToImageModel`)."""

from imgunlearn.models import diffusion, mae, unet, vqgan  # noqa: F401  (register the families)
from imgunlearn.models.base import ImageToImageModel, Latent, create_model, list_models, load_model

__all__ = ["ImageToImageModel", "Latent", "create_model", "list_models", "load_model"]
