"""CLIP-S: cosine similarity of the CLIP image embeddings of a prediction and its ground truth.

Default model ``openai/clip-vit-base-patch32`` (ViT-B/32), not scaled by 100. CLIP weights ship in no
registry package: they are loaded with ``transformers`` from a local folder or the Hugging Face cache
only (``local_files_only=True``, never the network). Resolution order: the ``model`` argument (a folder
or a hub id), ``$CHARACTERBENCH_CLIP``, then ``openai/clip-vit-base-patch32`` in the HF cache
(``$HF_HOME``).

Preprocessing is done on tensors, following the CLIP image processor: resize the short side to the
model's image size (bicubic with antialiasing, like PIL's), centre crop, normalise with the OpenAI CLIP
mean/std.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from metrics._checks import check_image_pair
from metrics._mean import PerImageMean

__all__ = ["CLIPImageEncoder", "CLIPScore", "CLIP_ENV", "DEFAULT_CLIP", "clip_score", "load_clip"]

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
CLIP_ENV = "CHARACTERBENCH_CLIP"
# The normalisation of the OpenAI CLIP image processor.
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPImageEncoder(nn.Module):
    """Images ``[N, 3, H, W]`` in [0, 1] -> unit-length CLIP image embeddings ``[N, D]``.

    Args:
        model: a ``transformers.CLIPModel``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.image_size = int(model.config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize short side, centre crop, normalise: ``[N, 3, H, W]`` -> ``[N, 3, S, S]``."""
        s = self.image_size
        h, w = images.shape[-2:]
        if min(h, w) != s:
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            images = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
        h, w = images.shape[-2:]
        top, left = (h - s) // 2, (w - s) // 2
        images = images[..., top : top + s, left : left + s]
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> ``[N, D]`` L2-normalised embeddings."""
        x = self.preprocess(images.to(self.mean.dtype))
        # vision_model + visual_projection rather than get_image_features, whose return type changed
        # between transformers 4 (tensor) and 5 (model output).
        pooled = self.model.vision_model(pixel_values=x).pooler_output
        return F.normalize(self.model.visual_projection(pooled), dim=-1)


def _missing_clip_message(source: str, error: Exception) -> str:
    return (
        f"CLIP weights {source!r} are not available locally ({type(error).__name__}: {str(error)[:200]}). "
        f"They ship in no package registry and are never downloaded at run time. On a machine with "
        f"internet run `huggingface-cli download {DEFAULT_CLIP} --local-dir <dir>` (or `hf download ...`), "
        f"copy <dir> here and set ${CLIP_ENV}=<dir> (or pass it as the model argument); alternatively "
        f"copy a Hugging Face cache that holds it and set $HF_HOME to it."
    )


def load_clip(model: str | os.PathLike | None = None, device: torch.device | str | None = None) -> CLIPImageEncoder:
    """Load a CLIP image encoder from local files only.

    Args:
        model: a folder saved with ``save_pretrained`` or a hub id present in the HF cache; default
            ``$CHARACTERBENCH_CLIP``, else ``openai/clip-vit-base-patch32``.
        device: where to put it (default CPU).

    Returns:
        A :class:`CLIPImageEncoder` in eval mode with gradients off.

    Raises:
        metrics.weights.WeightsNotFoundError: not found locally; the message says how to provide it.
    """
    from transformers import CLIPModel

    from metrics.weights import WeightsNotFoundError

    source = str(model) if model is not None else os.environ.get(CLIP_ENV) or DEFAULT_CLIP
    try:
        clip = CLIPModel.from_pretrained(source, local_files_only=True)
    except OSError as error:  # transformers raises OSError (EnvironmentError) for missing files
        raise WeightsNotFoundError(_missing_clip_message(source, error)) from error
    encoder = CLIPImageEncoder(clip).eval().to(device if device is not None else "cpu")
    encoder.requires_grad_(False)
    return encoder


def clip_score(preds: torch.Tensor, target: torch.Tensor, model: CLIPImageEncoder | None = None) -> torch.Tensor:
    """Per-image CLIP-S: cosine similarity of the CLIP image embeddings.

    Args:
        preds: ``[N, 3, H, W]`` in [0, 1].
        target: ``[N, 3, H, W]`` in [0, 1].
        model: a loaded :class:`CLIPImageEncoder`; default :func:`load_clip` on ``preds.device``.

    Returns:
        ``[N]`` similarities in [-1, 1] (1 for identical images), not scaled by 100.

    Raises:
        TypeError, ValueError: bad inputs; WeightsNotFoundError: CLIP not available locally.
    """
    check_image_pair(preds, target, channels=3)
    if model is None:
        model = load_clip(device=preds.device)
    device = model.mean.device
    with torch.no_grad():
        emb = model(torch.cat([preds, target]).to(device))
    n = preds.shape[0]
    return (emb[:n] * emb[n:]).sum(dim=-1).to(preds.device)


class CLIPScore(PerImageMean):
    """Mean CLIP-S over all image pairs seen, accumulated over batches and reduced across processes.

    Args:
        model: a loaded :class:`CLIPImageEncoder`; default :func:`load_clip`.
        **kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True

    def __init__(self, model: CLIPImageEncoder | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model if model is not None else load_clip()

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image values of a batch: ``preds``, ``target`` ``[N, 3, H, W]`` in [0, 1]."""
        return clip_score(preds, target, self.model)
