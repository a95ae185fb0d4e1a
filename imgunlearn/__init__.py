"""imgunlearn: machine unlearning for image models."""

__version__ = "0.1.0"

from imgunlearn.models import ImageToImageModel, create_model, list_models, load_model  # noqa: E402
from imgunlearn.registry import METHODS, MODELS  # noqa: E402

__all__ = ["METHODS", "MODELS", "ImageToImageModel", "__version__", "create_model", "list_models", "load_model"]
