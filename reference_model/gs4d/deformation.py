"""The HexPlane deformation field of 4D Gaussian Splatting (Wu et al. 2024; CharacterShot's research code).

Six feature planes per resolution over the pairs of (x, y, z, t), sampled bilinearly and multiplied
(k-planes' product), concatenated over the spatial resolutions, then a small MLP with three heads giving
position, log-scale and rotation offsets. Time is normalised to [0, 1] over the clip.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

# (a, b) coordinate pairs of (x, y, z, t) in k-planes order; planes with index 3 (time) are the time planes.
PLANE_PAIRS: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(4), 2))
SPATIAL_PLANES = tuple(i for i, p in enumerate(PLANE_PAIRS) if 3 not in p)  # xy, xz, yz
TIME_PLANES = tuple(i for i, p in enumerate(PLANE_PAIRS) if 3 in p)  # xt, yt, zt


class DeformationField(ModelMixin, ConfigMixin):
    """HexPlane + MLP: ``(means, t) -> (d means, d log-scales, d quats)``.

    Args:
        aabb: ``[x0, y0, z0, x1, y1, z1]`` box mapped onto the planes (points outside read the border).
        plane_resolution: Spatial plane resolution at multiplier 1.
        time_resolution: Time plane resolution.
        multires: Spatial resolution multipliers (one set of six planes each).
        plane_features: Features per plane.
        mlp_width: Hidden width.
        mlp_depth: 4DGS's ``defor_depth``: one input layer plus ``max(depth - 1, 0)`` hidden layers.
    """

    @register_to_config
    def __init__(
        self,
        aabb: tuple[float, ...] = (-1.0, -1.0, 0.0, 1.0, 1.0, 2.0),
        plane_resolution: int = 64,
        time_resolution: int = 25,
        multires: tuple[int, ...] = (1, 2),
        plane_features: int = 32,
        mlp_width: int = 64,
        mlp_depth: int = 1,
    ) -> None:
        super().__init__()
        if len(aabb) != 6:
            raise ValueError(f"aabb: expected 6 numbers [x0, y0, z0, x1, y1, z1], got {list(aabb)}")
        self.register_buffer("bounds", torch.tensor(aabb, dtype=torch.float32).reshape(2, 3), persistent=True)
        self.planes = torch.nn.ParameterList()
        for mult in multires:
            reso = [plane_resolution * mult] * 3 + [time_resolution]
            for a, b in PLANE_PAIRS:
                plane = torch.empty(1, plane_features, reso[b], reso[a])
                if b == 3:
                    torch.nn.init.ones_(plane)  # time planes start at 1: no time dependence (k-planes)
                else:
                    torch.nn.init.uniform_(plane, 0.1, 0.5)  # 4DGS / k-planes initialisation
                self.planes.append(torch.nn.Parameter(plane))
        layers: list[torch.nn.Module] = [torch.nn.Linear(plane_features * len(multires), mlp_width)]
        for _ in range(max(mlp_depth - 1, 0)):
            layers += [torch.nn.ReLU(), torch.nn.Linear(mlp_width, mlp_width)]
        self.feature_out = torch.nn.Sequential(*layers)

        def head(out: int) -> torch.nn.Sequential:
            seq = torch.nn.Sequential(
                torch.nn.ReLU(), torch.nn.Linear(mlp_width, mlp_width), torch.nn.ReLU(), torch.nn.Linear(mlp_width, out)
            )
            # Zero last layer: the field starts as the identity, so the fine stages start from the coarse fit.
            torch.nn.init.zeros_(seq[-1].weight)
            torch.nn.init.zeros_(seq[-1].bias)
            return seq

        self.pos_head, self.scale_head, self.rot_head = head(3), head(3), head(4)

    def grid_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.planes)

    def mlp_parameters(self) -> list[torch.nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("planes.")]

    def features(self, means: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """HexPlane features ``[N, plane_features * len(multires)]`` of points ``[N, 3]`` at times ``t [N]``."""
        lo, hi = self.bounds[0], self.bounds[1]
        xyz = (means - lo) / (hi - lo) * 2.0 - 1.0
        coords = torch.cat([xyz, (t * 2.0 - 1.0)[:, None]], dim=-1)  # [N, 4] in [-1, 1]
        per_scale = len(PLANE_PAIRS)
        feats = []
        for s in range(len(self.config.multires)):
            prod = None
            for i, (a, b) in enumerate(PLANE_PAIRS):
                grid = coords[None, None, :, [a, b]]  # [1, 1, N, 2]; x indexes width (axis a)
                f = F.grid_sample(self.planes[s * per_scale + i], grid, mode="bilinear", padding_mode="border",
                                  align_corners=True)[0, :, 0].t()  # [N, C]
                prod = f if prod is None else prod * f
            feats.append(prod)
        return torch.cat(feats, dim=-1)

    def forward(self, means: torch.Tensor, t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Offsets at time ``t``.

        Args:
            means: ``[N, 3]`` canonical centres.
            t: a float or ``[N]`` tensor in [0, 1].

        Returns:
            ``(d_means [N, 3], d_log_scales [N, 3], d_quats [N, 4])``.
        """
        if not torch.is_tensor(t):
            t = torch.tensor(float(t), device=means.device)
        t = t.to(means).expand(means.shape[0]) if t.ndim == 0 else t.to(means)
        hidden = self.feature_out(self.features(means, t))
        return self.pos_head(hidden), self.scale_head(hidden), self.rot_head(hidden)

    def regularisation(self, plane_tv: float, time_smoothness: float, l1_time: float) -> torch.Tensor:
        """4DGS's plane regularisers: spatial-plane TV, second-difference smoothness along time, L1 of the
        time planes from 1 (their weighted sum)."""
        total = self.planes[0].new_zeros(())
        per_scale = len(PLANE_PAIRS)
        for s in range(len(self.config.multires)):
            for i in range(per_scale):
                grid = self.planes[s * per_scale + i]
                if i in SPATIAL_PLANES:
                    if plane_tv:
                        h_tv = (grid[..., 1:, :] - grid[..., :-1, :]).square().mean()
                        w_tv = (grid[..., :, 1:] - grid[..., :, :-1]).square().mean()
                        total = total + plane_tv * 2.0 * (h_tv + w_tv)
                else:
                    if time_smoothness:
                        first = grid[..., 1:, :] - grid[..., :-1, :]
                        total = total + time_smoothness * (first[..., 1:, :] - first[..., :-1, :]).square().mean()
                    if l1_time:
                        total = total + l1_time * (1.0 - grid).abs().mean()
        return total
