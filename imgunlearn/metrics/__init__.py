"""torchmetrics `Metric`s for image-to-image unlearning, one per file.

Every metric takes `update(preds, target, mask=None, forget_mask=None)` with images `[B, 3, H, W]` in [0, 1],
the task's hidden-pixel `mask` and the `forget_mask` (both `[B, 1, H, W]`), and ignores what it does not
need, so one loop can feed them all. Use a separate instance per split.
"""

from imgunlearn.metrics.embedding_cosine import EmbeddingCosine
from imgunlearn.metrics.face_leak import FaceLeakRate
from imgunlearn.metrics.features import (
    FEATURE_NAMES,
    FeatureExtractor,
    FeatureUnavailableError,
    build_feature_extractor,
    describe_feature,
    sharing,
)
from imgunlearn.metrics.fid import FID
from imgunlearn.metrics.handcrafted import RandomConvFeatures, StatsFeatures
from imgunlearn.metrics.inception_score import InceptionScore, inception_score
from imgunlearn.metrics.kid import KID, mmd2_unbiased
from imgunlearn.metrics.lpips import LPIPS
from imgunlearn.metrics.mse import MSE
from imgunlearn.metrics.psnr import PSNR
from imgunlearn.metrics.ssim import SSIM, ssim

__all__ = [
    "EmbeddingCosine", "FEATURE_NAMES", "FID", "FaceLeakRate", "FeatureExtractor", "FeatureUnavailableError", "KID",
    "LPIPS", "InceptionScore", "MSE", "PSNR", "RandomConvFeatures", "SSIM", "StatsFeatures",
    "build_feature_extractor", "describe_feature", "inception_score", "sharing", "mmd2_unbiased", "ssim",
]
