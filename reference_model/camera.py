"""Camera conditioning of stage 2: Plücker ray maps and the camera encoder (DESIGN.md 8.2, 8.2.1).

A pixel's ray is ``(o x d, d)``: ``d`` the unit direction through the pixel centre and ``o`` the camera
centre, both in world coordinates (character4d's world: Z up, metres). The moment ``o x d`` does not
depend on which point of the ray stands in for ``o``, and the pair transforms like two vectors under a
rotation of the world, which is what makes it a camera code that a network can read.

CharacterShot frames are 480 x 480 renders centred on a 720 x 480 canvas (DESIGN.md 8.2.1), so the ray
map of a view is computed for that canvas: the square render's intrinsics, scaled to 480 and shifted by
the left padding (``canvas_intrinsics``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["CameraEncoder", "camera_tokens", "canvas_intrinsics", "plucker_rays"]


def _as_tensor(name: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu", torch.float64)
    else:
        t = torch.from_numpy(np.array(value, dtype=np.float64))  # a copy: character4d arrays are read-only
    if t.ndim != len(shape) or tuple(t.shape[1:]) != shape[1:]:
        raise ValueError(f"{name}: expected shape [V, {', '.join(map(str, shape[1:]))}], got {list(t.shape)}")
    return t


def plucker_rays(Ks: Any, viewmats: Any, height: int, width: int) -> torch.Tensor:
    """Plücker ray maps of pinhole cameras.

    Args:
        Ks: ``[V, 3, 3]`` OpenCV intrinsics in pixels of a ``width x height`` image (pixel centres at +0.5).
        viewmats: ``[V, 4, 4]`` world-to-camera, OpenCV axes (x right, y down, z forward).
        height: Ray-map rows.
        width: Ray-map columns.

    Returns:
        ``[V, 6, height, width]`` float32: channels 0-2 the moment ``o x d``, channels 3-5 the unit world
        direction ``d`` of the ray through each pixel centre, ``o`` the camera centre.

    Raises:
        ValueError: on wrong shapes, a size that is not a positive int, or a different number of Ks
            and viewmats.
    """
    Ks = _as_tensor("Ks", Ks, (0, 3, 3))
    viewmats = _as_tensor("viewmats", viewmats, (0, 4, 4))
    if Ks.shape[0] != viewmats.shape[0]:
        raise ValueError(f"Ks and viewmats: expected the same number of views, got {Ks.shape[0]} and {viewmats.shape[0]}")
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name}: expected a positive int, got {size!r}")
    v_coords, u_coords = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij"
    )
    pixels = torch.stack([u_coords, v_coords, torch.ones_like(u_coords)], dim=-1).reshape(-1, 3)  # [HW, 3]
    rot = viewmats[:, :3, :3]
    trans = viewmats[:, :3, 3]
    dirs_cam = torch.einsum("vij,nj->vni", torch.linalg.inv(Ks), pixels)  # [V, HW, 3]
    dirs = torch.einsum("vji,vnj->vni", rot, dirs_cam)  # R^T d: camera -> world
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = -torch.einsum("vji,vj->vi", rot, trans)  # camera centres -R^T t
    moments = torch.cross(origins[:, None, :].expand_as(dirs), dirs, dim=-1)
    rays = torch.cat([moments, dirs], dim=-1)  # [V, HW, 6]
    return rays.reshape(-1, height, width, 6).permute(0, 3, 1, 2).to(torch.float32).contiguous()


def canvas_intrinsics(Ks: Any, image_size: int, height: int = 480, width: int = 720) -> np.ndarray:
    """Intrinsics of square renders resized to ``height`` and centred on a ``width x height`` canvas.

    Args:
        Ks: ``[V, 3, 3]`` intrinsics of square ``image_size`` renders.
        image_size: Side of the renders in pixels.
        height: Canvas height = side of the resized render (480 in CharacterShot).
        width: Canvas width (720); the render sits ``(width - height) / 2`` pixels from the left.

    Returns:
        ``[V, 3, 3]`` float64 intrinsics of the canvas.

    Raises:
        ValueError: if the canvas is narrower than it is high.
    """
    if width < height:
        raise ValueError(f"width: expected >= height ({height}) for a centred square render, got {width}")
    Ks = np.array(Ks, dtype=np.float64)
    scale = height / float(image_size)
    out = Ks.copy()
    out[..., :2, :] *= scale
    out[..., 0, 2] += (width - height) / 2.0
    return out


class CameraEncoder(ModelMixin, ConfigMixin):
    """Plücker ray map -> one token per latent patch (the released ``camera_guider.pt`` layout).

    Six 3 x 3 convolutions with ``hidden_channels`` outputs (strides 1, 1, 1, 2, 2, 2) with SiLU after
    each, then a 2 x 2 stride-2 convolution to ``out_channels``: overall stride 16 = VAE 8 x patch 2, so a
    6 x 480 x 720 map becomes 30 x 45 = 1350 tokens, in the row-major order of the patch embedding.
    ``state_dict`` keys: ``layer.{0,2,4,6,8,10,12}.{weight,bias}``.

    Args (config):
        in_channels: 6 (moment and direction).
        hidden_channels: 16 (the released ``concat_dim * 4`` with ``concat_dim = 4``).
        out_channels: 3072, the transformer width of CogVideoX-5B.
        zero_init_output: True: the last convolution starts at zero, so an untrained encoder adds
            nothing and stage 2 starts from stage 1's behaviour (the released code used He init
            everywhere; loaded weights overwrite either).
    """

    @register_to_config
    def __init__(self, in_channels: int = 6, hidden_channels: int = 16, out_channels: int = 3072,
                 zero_init_output: bool = True):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stride in (1, 1, 1, 2, 2, 2):
            layers += [nn.Conv2d(channels, hidden_channels, kernel_size=3, stride=stride, padding=1), nn.SiLU()]
            channels = hidden_channels
        layers.append(nn.Conv2d(hidden_channels, out_channels, kernel_size=2, stride=2))
        self.layer = nn.Sequential(*layers)
        for module in self.layer:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, std=float(np.sqrt(2.0 / fan_in)))
                nn.init.zeros_(module.bias)
        if zero_init_output:
            nn.init.zeros_(self.layer[-1].weight)

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        """Encode ray maps.

        Args:
            rays: ``(..., 6, H, W)`` Plücker maps (``H``, ``W`` multiples of 16).

        Returns:
            ``(..., (H/16) * (W/16), out_channels)`` tokens, row-major over the patch grid.

        Raises:
            ValueError: on a wrong channel count or a size that is not a multiple of 16.
        """
        if rays.ndim < 4 or rays.shape[-3] != self.config.in_channels:
            raise ValueError(f"rays: expected (..., {self.config.in_channels}, H, W), got {tuple(rays.shape)}")
        if rays.shape[-2] % 16 or rays.shape[-1] % 16:
            raise ValueError(f"rays: expected H and W multiples of 16, got {tuple(rays.shape[-2:])}")
        lead = rays.shape[:-3]
        weight = self.layer[0].weight
        out = self.layer(rays.reshape(-1, *rays.shape[-3:]).to(weight.dtype))
        return out.flatten(2).transpose(1, 2).reshape(*lead, -1, self.config.out_channels)


def camera_tokens(encoder: CameraEncoder, Ks: Any, viewmats: Any, height: int, width: int) -> torch.Tensor:
    """Ray maps of the cameras encoded to tokens: ``[V, (height/16) * (width/16), out_channels]``.

    Args:
        encoder: The camera encoder.
        Ks: ``[V, 3, 3]`` intrinsics of the ``width x height`` frames.
        viewmats: ``[V, 4, 4]`` OpenCV world-to-camera.
        height, width: Frame size in pixels.
    """
    rays = plucker_rays(Ks, viewmats, height, width).to(encoder.device)
    return encoder(rays)
