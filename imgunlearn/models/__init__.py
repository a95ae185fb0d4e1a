"""Image-to-image model families behind one interface (`ImageToImageModel`)."""

from imgunlearn.models import unet  # noqa: F401  (registers the family)
from imgunlearn.models.base import ImageToImageModel, Latent, create_model, list_models, load_model

__all__ = ["ImageToImageModel", "Latent", "create_model", "list_models", "load_model"]
