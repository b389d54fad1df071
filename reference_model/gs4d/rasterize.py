"""Rasterising Gaussians: gsplat on GPU, and a small pure-PyTorch rasteriser for CPU tests and small runs.

Both follow gsplat 1.5.3's classic 3DGS model exactly: EWA projection with the Jacobian's clipping at 1.3x the
field of view, ``eps2d = 0.3`` added to the 2D covariance, ``alpha = min(0.999, o exp(-sigma))``, Gaussians
with ``alpha < 1/255`` skipped, front-to-back compositing that stops before transmittance would fall to 1e-4,
and the expected depth ``sum(w z) / sum(w)``. Pixel centres lie at +0.5 (character4d.cameras). The torch
rasteriser evaluates every Gaussian at every pixel (no tiles), so it is for small images and few Gaussians;
it is checked against gsplat on GPU for images and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from reference_model.gs4d.gaussians import Gaussians, covariances, eval_sh

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat Common.h
TRANSMITTANCE_MIN = 1e-4  # gsplat RasterizeToPixels3DGSFwd.cu
EPS2D = 0.3  # gsplat rasterization() default (the 3DGS low-pass filter)
NEAR_PLANE = 0.01  # gsplat default


@dataclass
class RenderOutput:
    """Rendered views.

    Attributes:
        colors: ``[V, H, W, 3]`` composited on the background.
        alphas: ``[V, H, W, 1]`` accumulated opacity.
        depths: ``[V, H, W, 1]`` expected camera-space depth ``sum(w z) / sum(w)`` (0 where nothing is).
        means2d: ``[V, N, 2]`` projected centres in pixels (their ``.grad`` drives densification).
        visible: ``[V, N]`` bool, the Gaussian touches the view.
        backend: ``"gsplat"`` or ``"torch"``.
    """

    colors: torch.Tensor
    alphas: torch.Tensor
    depths: torch.Tensor
    means2d: torch.Tensor
    visible: torch.Tensor
    backend: str


def check_cameras(viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int) -> None:
    """Raise ``ValueError`` naming the argument when camera tensors or the size are malformed."""
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats: expected [V, 4, 4] world-to-camera (OpenCV), got {list(viewmats.shape)}")
    if Ks.shape != (viewmats.shape[0], 3, 3):
        raise ValueError(f"Ks: expected [{viewmats.shape[0]}, 3, 3], got {list(Ks.shape)}")
    for name, size in (("width", width), ("height", height)):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{name}: expected a positive int, got {size!r}")


def project(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int):
    """EWA projection of Gaussians into each view (gsplat's ``persp_proj``).

    Args:
        gaussians: N Gaussians.
        viewmats: ``[V, 4, 4]`` world-to-camera (OpenCV).
        Ks: ``[V, 3, 3]`` intrinsics.
        width, height: image size in pixels.

    Returns:
        ``(means2d [V, N, 2], conics [V, N, 3] (a, b, c of the inverse 2D covariance), depths [V, N],
        valid [V, N] bool)``.
    """
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    cam = torch.einsum("vij,nj->vni", rot, gaussians.means) + trans[:, None, :]
    x, y, z = cam.unbind(-1)
    fx, fy, cx, cy = Ks[:, 0, 0, None], Ks[:, 1, 1, None], Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    zs = z.clamp_min(1e-6)
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    tx = zs * torch.minimum(lim_xp, torch.maximum(-lim_xn, x / zs))
    ty = zs * torch.minimum(lim_yp, torch.maximum(-lim_yn, y / zs))
    zero = torch.zeros_like(zs)
    jac = torch.stack(
        [torch.stack([fx / zs, zero, -fx * tx / zs**2], -1), torch.stack([zero, fy / zs, -fy * ty / zs**2], -1)], -2
    )  # [V, N, 2, 3]
    cov_cam = rot[:, None] @ covariances(gaussians.quats, gaussians.scales)[None] @ rot[:, None].transpose(-1, -2)
    cov2d = jac @ cov_cam @ jac.transpose(-1, -2)
    a = cov2d[..., 0, 0] + EPS2D
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + EPS2D
    det = a * c - b * b
    valid = (z > NEAR_PLANE) & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)
    return means2d, conics, z, valid


def _composite_view(means2d, conics, opacities, colors, depths, pix):
    """Dense front-to-back compositing of one view's depth-sorted Gaussians over pixels ``pix [P, 2]``."""
    d = pix[:, None, :] - means2d[None, :, :]  # [P, N, 2]
    sigma = 0.5 * (conics[None, :, 0] * d[..., 0] ** 2 + conics[None, :, 2] * d[..., 1] ** 2) + conics[
        None, :, 1
    ] * d[..., 0] * d[..., 1]
    alpha = torch.clamp(opacities[None, :] * torch.exp(-sigma), max=0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    trans_incl = torch.cumprod(1.0 - alpha, dim=1)
    trans_excl = torch.cat([torch.ones_like(trans_incl[:, :1]), trans_incl[:, :-1]], dim=1)
    # gsplat stops at the first Gaussian that would take transmittance to <= 1e-4, excluding it.
    weights = alpha * trans_excl * (trans_incl > TRANSMITTANCE_MIN).to(alpha.dtype)
    rgb = weights @ colors
    acc = weights.sum(dim=1, keepdim=True)
    dep = (weights @ depths[:, None]) / acc.clamp_min(1e-10)
    return torch.cat([rgb, acc, dep], dim=-1)


def _render_view(args, width: int, height: int, block: int) -> torch.Tensor:
    """``[H, W, 5]`` (rgb, alpha, depth) of one view, pixel block by pixel block.

    Each block composites only the Gaussians whose box of ``alpha >= 1/255`` (``|dx| <= sqrt(2 ln(255 o)
    cov_xx)``, likewise in y) meets it: outside that box a Gaussian is skipped by the alpha threshold anyway,
    so the result equals the dense evaluation of every Gaussian at every pixel.
    """
    means2d, conics, opacities, colors, depths = args
    dtype, device = means2d.dtype, means2d.device
    with torch.no_grad():
        det = (conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2).clamp_min(1e-30)
        reach = torch.sqrt(2.0 * torch.log((opacities / ALPHA_THRESHOLD).clamp_min(1.0)))
        rx = reach * torch.sqrt(conics[:, 2] / det)
        ry = reach * torch.sqrt(conics[:, 0] / det)
        mx, my = means2d[:, 0], means2d[:, 1]
    rows = []
    for y0 in range(0, height, block):
        y1 = min(y0 + block, height)
        cols = []
        for x0 in range(0, width, block):
            x1 = min(x0 + block, width)
            ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=dtype, device=device) + 0.5,
                                    torch.arange(x0, x1, dtype=dtype, device=device) + 0.5, indexing="ij")
            pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
            hit = torch.nonzero((mx + rx > x0) & (mx - rx < x1) & (my + ry > y0) & (my - ry < y1)).squeeze(1)
            if hit.numel() == 0:
                out = torch.zeros(pix.shape[0], 5, dtype=dtype, device=device)
            else:
                sub = (means2d[hit], conics[hit], opacities[hit], colors[hit], depths[hit], pix)
                if torch.is_grad_enabled() and any(t.requires_grad for t in sub):
                    out = checkpoint(_composite_view, *sub, use_reentrant=False)
                else:
                    out = _composite_view(*sub)
            cols.append(out.reshape(y1 - y0, x1 - x0, 5))
        rows.append(torch.cat(cols, dim=1))
    return torch.cat(rows, dim=0)


def rasterize_torch(
    gaussians: Gaussians,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | None = None,
    sh_degree: int | None = None,
    block: int = 8,
) -> RenderOutput:
    """Render with the pure-PyTorch rasteriser (differentiable; per pixel block of ``block`` x ``block``, only
    the Gaussians that can reach it are composited, each block checkpointed to bound memory).

    Args:
        gaussians: N Gaussians.
        viewmats: ``[V, 4, 4]`` world-to-camera (OpenCV).
        Ks: ``[V, 3, 3]`` intrinsics.
        width, height: image size.
        background: ``[3]`` colour composited behind (None: black).
        sh_degree: SH degree to evaluate (None: all the coefficients hold).
        block: pixel block side (a speed setting; the image does not depend on it).

    Returns:
        :class:`RenderOutput` (backend ``"torch"``).

    Raises:
        ValueError: on malformed cameras.
    """
    check_cameras(viewmats, Ks, width, height)
    degree = gaussians.sh_degree if sh_degree is None else sh_degree
    means2d, conics, depths, valid = project(gaussians, viewmats, Ks, width, height)
    campos = -torch.einsum("vji,vj->vi", viewmats[:, :3, :3], viewmats[:, :3, 3])
    dirs = torch.nn.functional.normalize(gaussians.means[None] - campos[:, None], dim=-1)
    colors = eval_sh(degree, gaussians.sh[None].expand(dirs.shape[0], -1, -1, -1), dirs)  # [V, N, 3]
    opac = gaussians.opacities
    outs = []
    for v in range(viewmats.shape[0]):
        order = torch.argsort(torch.where(valid[v], depths[v], torch.full_like(depths[v], float("inf"))))
        order = order[valid[v][order] & (opac[order] >= ALPHA_THRESHOLD)]
        args = (means2d[v][order], conics[v][order], opac[order], colors[v][order], depths[v][order])
        outs.append(_render_view(args, width, height, block))
    out = torch.stack(outs)
    rgb, alphas, deps = out[..., :3], out[..., 3:4], out[..., 4:5]
    if background is not None:
        rgb = rgb + (1.0 - alphas) * background.to(rgb)
    return RenderOutput(rgb, alphas, deps, means2d, valid, "torch")


def gsplat_available() -> bool:
    """Whether gsplat can be imported (it compiles its CUDA code on first use)."""
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_gsplat(
    gaussians: Gaussians,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | None = None,
    sh_degree: int | None = None,
) -> RenderOutput:
    """Render with ``gsplat.rasterization`` (CUDA; same arguments and result as :func:`rasterize_torch`).

    Raises:
        ImportError: if gsplat is not installed (``pip install gsplat==1.5.3``, the ``gpu`` extra).
        ValueError: on malformed cameras.
    """
    check_cameras(viewmats, Ks, width, height)
    try:
        from gsplat import rasterization
    except ImportError as exc:
        raise ImportError("rasterize_gsplat needs gsplat: pip install 'character4d-toolkit[gpu]' (gsplat==1.5.3)") from exc
    degree = gaussians.sh_degree if sh_degree is None else sh_degree
    out, alphas, meta = rasterization(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.sh,
        viewmats, Ks, width, height, sh_degree=degree, packed=False, render_mode="RGB+ED",
        near_plane=NEAR_PLANE, eps2d=EPS2D,
    )
    rgb, deps = out[..., :3], out[..., 3:4]
    if background is not None:
        rgb = rgb + (1.0 - alphas) * background.to(rgb)
    visible = (meta["radii"] > 0).all(dim=-1) if meta["radii"].ndim == 3 else meta["radii"] > 0
    return RenderOutput(rgb, alphas, deps, meta["means2d"], visible, "gsplat")


def rasterize(
    gaussians: Gaussians,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | None = None,
    sh_degree: int | None = None,
    backend: str = "auto",
) -> RenderOutput:
    """Render with gsplat (``"gsplat"``), the torch rasteriser (``"torch"``), or gsplat on CUDA when
    installed and torch otherwise (``"auto"``). Arguments as :func:`rasterize_torch`.

    Raises:
        ValueError: for an unknown backend or malformed cameras.
    """
    if backend == "auto":
        backend = "gsplat" if gaussians.means.is_cuda and gsplat_available() else "torch"
    if backend == "gsplat":
        return rasterize_gsplat(gaussians, viewmats, Ks, width, height, background, sh_degree)
    if backend == "torch":
        return rasterize_torch(gaussians, viewmats, Ks, width, height, background, sh_degree)
    raise ValueError(f"backend: expected 'auto', 'gsplat' or 'torch', got {backend!r}")
