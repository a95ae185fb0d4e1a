"""Pluggable feature extractors for FID, KID, Inception Score and the embedding cosine.

`feature` may be:

- `"stats"` (default): handcrafted image statistics (`StatsFeatures`), offline and deterministic;
- `"random_conv"`: a fixed random-weight conv net seeded with 0 (`RandomConvFeatures`), offline;
- `"inception"`: the standard FID Inception-v3 (torch-fidelity's port, via torchmetrics); needs the
  `torch-fidelity` package and its weights, downloaded on first use only if `allow_download=True`;
- `"clip"`: CLIP ViT-B/32 image embeddings from an installed `open_clip` or `transformers`; the same rule
  about weights applies;
- any `nn.Module` mapping images `[B, 3, H, W]` in [0, 1] to `[B, D]` (or anything flattened to that);
- the path of a TorchScript file (`torch.jit.save`) holding such a module, or of a `.pt2` exported
  program (`torch.export.save`).

Metrics built on the offline extractors are comparable across models evaluated with the same extractor,
not with published Inception / CLIP numbers. Nothing falls back silently: a named extractor that cannot be
built raises `FeatureUnavailableError` saying what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgunlearn.metrics.handcrafted import RandomConvFeatures, StatsFeatures

Feature = str | os.PathLike | nn.Module
FEATURE_NAMES = ("stats", "random_conv", "inception", "clip")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FeatureUnavailableError(RuntimeError):
    """A named feature extractor needs a package or weights this machine does not have."""


class FeatureExtractor(nn.Module):
    """Holds an extractor in eval mode without gradients and flattens its output to `[B, D]` float.

    Several metrics sharing one extractor often embed the same batch (FID, KID and the cosine all embed the
    outputs and the ground truths). Inside `with extractor.sharing():` (or `sharing(*extractors)`) the features
    of each input tensor object are computed once and reused for the rest of the block; the caller promises
    not to change those tensors in place inside it. Outside such a block nothing is remembered.
    """

    def __init__(self, module: nn.Module, name: str) -> None:
        super().__init__()
        self._shared: dict[int, tuple[Tensor, Tensor]] | None = None
        self._depth = 0
        self.module = module.eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.name = name

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)

    @contextmanager
    def sharing(self) -> Iterator[None]:
        """Reuse the features of a tensor passed again within the block (keyed by the tensor object)."""
        if self._depth == 0:
            self._shared = {}
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._shared = None

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"feature extractors take RGB images [B, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        if self._shared is not None:
            hit = self._shared.get(id(images))
            if hit is not None and hit[0] is images:
                return hit[1]
        out = self.module(images)
        if isinstance(out, (tuple, list)):
            out = out[0]
        features = out.reshape(images.shape[0], -1).float()  # [B, D]
        if self._shared is not None:
            self._shared[id(images)] = (images, features)  # holding `images` keeps its id from being reused
        return features


@contextmanager
def sharing(*extractors: FeatureExtractor | None) -> Iterator[None]:
    """`FeatureExtractor.sharing` for several extractors at once (None entries are skipped)."""
    with ExitStack() as stack:
        for extractor in extractors:
            if extractor is not None:
                stack.enter_context(extractor.sharing())
        yield


def build_feature_extractor(feature: Feature = "stats", kind: str = "features",
                            allow_download: bool = False) -> FeatureExtractor:
    """Resolve `feature` (see the module docstring) into a `FeatureExtractor`.

    Args:
        feature: A name, a TorchScript path or an `nn.Module`.
        kind: `"features"` (embeddings, for FID / KID / cosine) or `"logits"` (class scores, for the
            Inception Score).
        allow_download: Let `"inception"` / `"clip"` download missing weights; by default only weights
            already on the machine are used.
    """
    if kind not in ("features", "logits"):
        raise ValueError(f"kind must be 'features' or 'logits', got {kind!r}")
    if isinstance(feature, FeatureExtractor):
        return feature
    if isinstance(feature, nn.Module):
        return FeatureExtractor(feature, type(feature).__name__)
    if not isinstance(feature, (str, os.PathLike)):
        raise ValueError(f"feature must be a name, a TorchScript path or an nn.Module, got {type(feature).__name__}")
    if isinstance(feature, str) and feature in FEATURE_NAMES:
        if feature in ("stats", "random_conv"):
            if kind == "logits":
                raise ValueError(f"feature {feature!r} gives no class logits; the Inception Score needs "
                                 "'inception' or a classifier nn.Module / TorchScript file")
            module = StatsFeatures() if feature == "stats" else RandomConvFeatures(seed=0)
            return FeatureExtractor(module, feature)
        if feature == "inception":
            return FeatureExtractor(_inception(kind, allow_download), "inception")
        if kind == "logits":
            raise ValueError("feature 'clip' gives embeddings, not class logits; it cannot score the Inception Score")
        return FeatureExtractor(_clip(allow_download), "clip")
    path = Path(feature)
    if not path.is_file():
        if isinstance(feature, str) and os.sep not in feature and "." not in feature:
            raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURE_NAMES)}, "
                             "a TorchScript file or an nn.Module")
        raise FileNotFoundError(f"feature extractor file not found: {path}")
    try:
        if path.suffix == ".pt2":
            module = _Exported(torch.export.load(str(path)).module())
        else:
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        raise ValueError(f"{path} is neither a TorchScript file (torch.jit.save) nor a .pt2 exported program "
                         f"(torch.export.save): {error}") from error
    return FeatureExtractor(module, path.name)


def describe_feature(feature: FeatureExtractor | str) -> str:
    """A short human description of an extractor (or of an extractor name), for reports."""
    name = feature.name if isinstance(feature, FeatureExtractor) else str(feature)
    if name == "stats":
        return "handcrafted image statistics (offline; not comparable to published Inception/CLIP numbers)"
    if name == "random_conv":
        return "a fixed random-weight conv net, seed 0 (offline; not comparable to published Inception/CLIP numbers)"
    if name == "inception":
        return "the standard FID Inception-v3"
    if name == "clip":
        return "CLIP ViT-B/32 image embeddings"
    return f"a user-supplied extractor ({name})"


class _Exported(nn.Module):
    """Runs a `torch.export` program, kept outside the module tree (it refuses `train` / `eval`).

    It runs on the device it was exported for.
    """

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "program", program)

    def forward(self, images: Tensor) -> Tensor:
        return self.program(images)


def _hub_file_present(url: str) -> bool:
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)).is_file()


class _Uint8Input(nn.Module):
    """Feeds torch-fidelity's Inception, which expects uint8 images."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return self.net((images.clamp(0, 1) * 255).round().to(torch.uint8))


def _inception(kind: str, allow_download: bool) -> nn.Module:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise FeatureUnavailableError(
            "feature 'inception' needs the torch-fidelity package (pip install torch-fidelity); "
            "use feature='stats' for offline metrics") from error
    if not allow_download and not _hub_file_present(URL_INCEPTION_V3):
        raise FeatureUnavailableError(
            f"the Inception-v3 FID weights are not in {Path(torch.hub.get_dir()) / 'checkpoints'}; "
            "pass allow_download=True (--allow-download) on a machine with network access, or use feature='stats'")
    features = ["2048"] if kind == "features" else ["logits_unbiased"]
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=features)
    except Exception as error:  # download or load failures of a third-party package
        raise FeatureUnavailableError(f"could not load the Inception-v3 FID weights: {error}") from error
    return _Uint8Input(net)


class _ClipImage(nn.Module):
    """CLIP image embeddings of images in [0, 1]: resize to 224, CLIP normalisation, encode."""

    def __init__(self, encode: nn.Module, size: int = 224) -> None:
        super().__init__()
        self.encode = encode
        self.size = size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(images.float(), size=(self.size, self.size), mode="bicubic", align_corners=False)
        return self.encode((x.clamp(0, 1) - self.mean) / self.std)


class _OpenClipEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.encode_image(x)


class _HFClipEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.get_image_features(pixel_values=x)


def _clip(allow_download: bool) -> nn.Module:
    problems = []
    try:
        import open_clip
    except ImportError:
        problems.append("open_clip is not installed")
    else:
        if allow_download:
            try:
                model = open_clip.create_model_and_transforms("ViT-B-32", pretrained="openai")[0]
                return _ClipImage(_OpenClipEncoder(model))
            except Exception as error:  # download or load failures of a third-party package
                problems.append(f"open_clip could not load ViT-B-32/openai: {error}")
        else:
            problems.append("open_clip weights are only fetched with allow_download=True")
    try:
        from transformers import CLIPModel
    except ImportError:
        problems.append("transformers is not installed")
    else:
        try:
            model = CLIPModel.from_pretrained("openai/clip-vit-base-patch32", local_files_only=not allow_download)
            return _ClipImage(_HFClipEncoder(model))
        except Exception as error:  # download or load failures of a third-party package
            problems.append(f"transformers could not load openai/clip-vit-base-patch32: {error}")
    raise FeatureUnavailableError("feature 'clip' is unavailable: " + "; ".join(problems)
                                  + ". Install open_clip_torch or transformers and allow a download, or use 'stats'")
