"""Densification and pruning of the canonical Gaussians (3DGS's adaptive density control, gsplat's
``DefaultStrategy`` rules), on a ``ParameterDict`` and its Adam optimiser.

Screen-space gradients are accumulated as gsplat does (pixel gradients of the projected centres scaled by
half the image size and by the number of views rendered together, i.e. NDC gradients of one view); every
``densify_every`` steps Gaussians whose mean gradient exceeds ``grow_grad2d`` are cloned (small) or split in
two (large, scales / 1.6, new centres drawn from the Gaussian); transparent and oversized ones are pruned.
"""

from __future__ import annotations

import math

import torch

from reference_model.gs4d.gaussians import quat_to_rotmat


class Densifier:
    """Accumulates gradient statistics and edits the parameters and optimiser state.

    Args:
        grow_grad2d, grow_scale3d, prune_opacity, prune_scale3d, max_gaussians: see ``Gs4dConfig``.
        scene_scale: the scene's size in metres (scale thresholds are fractions of it).
    """

    def __init__(self, grow_grad2d: float, grow_scale3d: float, prune_opacity: float, prune_scale3d: float,
                 max_gaussians: int, scene_scale: float) -> None:
        self.grow_grad2d = grow_grad2d
        self.grow_scale3d = grow_scale3d
        self.prune_opacity = prune_opacity
        self.prune_scale3d = prune_scale3d
        self.max_gaussians = max_gaussians
        self.scene_scale = scene_scale
        self.grad_sum: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def accumulate(self, means2d: torch.Tensor, visible: torch.Tensor, width: int, height: int) -> None:
        """Add one step's statistics. ``means2d [V, N, 2]`` must hold ``.grad``; ``visible [V, N]``."""
        if means2d.grad is None:
            return
        grad = means2d.grad.detach().clone()
        n_views = grad.shape[0]
        grad[..., 0] *= width / 2.0 * n_views
        grad[..., 1] *= height / 2.0 * n_views
        norms = grad.norm(dim=-1) * visible
        n = norms.shape[1]
        if self.grad_sum is None or self.grad_sum.shape[0] != n:
            self.grad_sum = torch.zeros(n, device=norms.device)
            self.count = torch.zeros(n, device=norms.device)
        self.grad_sum += norms.sum(0)
        self.count += visible.float().sum(0)

    def reset(self) -> None:
        self.grad_sum = None
        self.count = None

    @torch.no_grad()
    def step(self, params: torch.nn.ParameterDict, optimizer: torch.optim.Optimizer, prune_large: bool) -> dict[str, int]:
        """Clone, split and prune once; returns the counts."""
        n = params["means"].shape[0]
        stats = {"cloned": 0, "split": 0, "pruned": 0}
        if self.grad_sum is not None and self.grad_sum.shape[0] == n:
            avg = self.grad_sum / self.count.clamp_min(1)
            high = avg > self.grow_grad2d
            big = torch.exp(params["log_scales"]).max(dim=-1).values > self.grow_scale3d * self.scene_scale
            room = max(self.max_gaussians - n, 0)
            clone = high & ~big
            split = high & big
            if int(clone.sum() + split.sum()) > room:  # keep the largest gradients
                order = torch.argsort(torch.where(high, avg, torch.zeros_like(avg)), descending=True)
                keep = torch.zeros_like(high)
                keep[order[:room]] = True
                clone, split = clone & keep, split & keep
            stats["cloned"], stats["split"] = int(clone.sum()), int(split.sum())
            if clone.any():
                _append(params, optimizer, {k: v[clone] for k, v in params.items()})
                split = torch.cat([split, torch.zeros(int(clone.sum()), dtype=torch.bool, device=split.device)])
            if split.any():
                sel = {k: v[split] for k, v in params.items()}
                scales = torch.exp(sel["log_scales"])
                rot = quat_to_rotmat(sel["quats"])
                new = []
                for _ in range(2):
                    offset = (rot @ (torch.randn_like(scales) * scales)[..., None])[..., 0]
                    child = dict(sel)
                    child["means"] = sel["means"] + offset
                    child["log_scales"] = torch.log(scales / 1.6)
                    new.append(child)
                _append(params, optimizer, {k: torch.cat([c[k] for c in new]) for k in sel})
                keep = torch.cat([~split, torch.ones(2 * int(split.sum()), dtype=torch.bool, device=split.device)])
                _select(params, optimizer, keep)
        opac = torch.sigmoid(params["opacity_logits"])
        prune = opac < self.prune_opacity
        if prune_large:
            prune |= torch.exp(params["log_scales"]).max(dim=-1).values > self.prune_scale3d * self.scene_scale
        if prune.any() and not prune.all():
            stats["pruned"] = int(prune.sum())
            _select(params, optimizer, ~prune)
        self.reset()
        return stats

    @torch.no_grad()
    def reset_opacity(self, params: torch.nn.ParameterDict, optimizer: torch.optim.Optimizer, value: float = 0.01) -> None:
        """3DGS's opacity reset: clamp opacities to at most ``value`` and clear their optimiser moments."""
        logit = math.log(value / (1 - value))
        params["opacity_logits"].data.clamp_(max=logit)
        state = optimizer.state.get(params["opacity_logits"], {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].zero_()


def _replace(params: torch.nn.ParameterDict, optimizer: torch.optim.Optimizer, name: str, new: torch.Tensor, fn) -> None:
    old = params[name]
    param = torch.nn.Parameter(new, requires_grad=old.requires_grad)
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                state = optimizer.state.pop(old, None)
                if state:
                    for key in ("exp_avg", "exp_avg_sq"):
                        if key in state:
                            state[key] = fn(state[key])
                    optimizer.state[param] = state
                group["params"][i] = param
    params[name] = param


def _append(params, optimizer, extra: dict[str, torch.Tensor]) -> None:
    for name in list(params.keys()):
        rows = extra[name].shape[0]
        _replace(params, optimizer, name, torch.cat([params[name].data, extra[name]]),
                 lambda s, rows=rows: torch.cat([s, torch.zeros((rows,) + s.shape[1:], dtype=s.dtype, device=s.device)]))


def _select(params, optimizer, keep: torch.Tensor) -> None:
    for name in list(params.keys()):
        _replace(params, optimizer, name, params[name].data[keep], lambda s: s[keep])
