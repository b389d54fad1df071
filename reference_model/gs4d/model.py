"""The 4D character: canonical Gaussians plus a deformation field over time; saving and loading a fit.

A fit directory holds ``config.json`` (the :class:`~reference_model.gs4d.config.Gs4dConfig`),
``model/gaussians.safetensors`` (canonical parameters, raw: log-scales, opacity logits, SH) and
``model/deformation/`` (the :class:`~reference_model.gs4d.deformation.DeformationField`, diffusers
``save_pretrained`` layout), plus ``model/meta.json`` (number of frames, SH degree).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reference_model.gs4d.config import Gs4dConfig
from reference_model.gs4d.deformation import DeformationField
from reference_model.gs4d.gaussians import Gaussians

PARAM_NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh0", "shN")


class Gaussians4D(torch.nn.Module):
    """Canonical Gaussians (``params``) and the :class:`DeformationField` (``deformation``).

    Args:
        params: raw canonical parameters: ``means [N, 3]``, ``log_scales [N, 3]``, ``quats [N, 4]`` (w, x, y, z,
            unnormalised), ``opacity_logits [N]``, ``sh0 [N, 1, 3]``, ``shN [N, K - 1, 3]``.
        deformation: the field.
        num_frames: frames of the clip the model was fitted to (time ``t = f / (num_frames - 1)``).

    Raises:
        ValueError: if a parameter is missing or shapes disagree.
    """

    def __init__(self, params: dict[str, torch.Tensor], deformation: DeformationField, num_frames: int) -> None:
        super().__init__()
        missing = [name for name in PARAM_NAMES if name not in params]
        if missing:
            raise ValueError(f"params: missing {missing}")
        n = params["means"].shape[0]
        for name in PARAM_NAMES:
            if params[name].shape[0] != n:
                raise ValueError(f"params[{name!r}]: expected {n} rows like means, got {list(params[name].shape)}")
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(params[k].detach().clone()) for k in PARAM_NAMES})
        self.deformation = deformation
        self.num_frames = int(num_frames)
        self.deform_enabled = True

    @property
    def num(self) -> int:
        return int(self.params["means"].shape[0])

    @property
    def sh_degree(self) -> int:
        return int((self.params["shN"].shape[1] + 1) ** 0.5) - 1

    def frame_time(self, frame: int | float) -> float:
        """Normalised time of frame ``frame`` (0 for the first, 1 for the last)."""
        return float(frame) / max(self.num_frames - 1, 1)

    def canonical(self) -> Gaussians:
        """The canonical (undeformed) Gaussians, differentiable."""
        p = self.params
        return Gaussians(
            means=p["means"],
            quats=torch.nn.functional.normalize(p["quats"], dim=-1),
            scales=torch.exp(p["log_scales"]),
            opacities=torch.sigmoid(p["opacity_logits"]),
            sh=torch.cat([p["sh0"], p["shN"]], dim=1),
        )

    def deformed_means(self, t: float, index: torch.Tensor | None = None) -> torch.Tensor:
        """Centres ``[N, 3]`` (or ``[len(index), 3]``) at normalised time ``t``, differentiable."""
        means = self.params["means"] if index is None else self.params["means"][index]
        if not self.deform_enabled:
            return means
        return means + self._offsets([t], means)[0][0]

    def deformed_means_at_times(self, times: list[float]) -> list[torch.Tensor]:
        """Centres ``[N, 3]`` at each of ``times``, from one pass of the field over all of them."""
        means = self.params["means"]
        if not self.deform_enabled:
            return [means for _ in times]
        return [means + d_means for d_means, _, _ in self._offsets(times, means)]

    def gaussians_at_times(self, times: list[float]) -> list[Gaussians]:
        """:meth:`gaussians_at` for several times, from one pass of the field over all of them."""
        if not self.deform_enabled:
            return [self.canonical() for _ in times]
        p = self.params
        opacities = torch.sigmoid(p["opacity_logits"])
        sh = torch.cat([p["sh0"], p["shN"]], dim=1)
        return [
            Gaussians(
                means=p["means"] + dm,
                quats=torch.nn.functional.normalize(p["quats"] + dq, dim=-1),
                scales=torch.exp(p["log_scales"] + ds),
                opacities=opacities,
                sh=sh,
            )
            for dm, ds, dq in self._offsets(times, p["means"])
        ]

    def _offsets(self, times: list[float], means: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The field's ``(d_means, d_log_scales, d_quats)`` of ``means [N, 3]`` at each of ``times``: one pass
        of the field over all of them (a fit is bound by kernel launches, not arithmetic)."""
        n = means.shape[0]
        if len(times) == 1:
            return [self.deformation(means, times[0])]
        t = torch.tensor(times, dtype=means.dtype, device=means.device).repeat_interleave(n)
        return list(zip(*(d.split(n) for d in self.deformation(means.repeat(len(times), 1), t))))

    def gaussians_at(self, t: float) -> Gaussians:
        """The Gaussians at normalised time ``t`` in [0, 1] (differentiable; ``.detach()`` for export).

        Args:
            t: time; frame ``f`` of the fitted clip is ``t = f / (num_frames - 1)``.

        Returns:
            :class:`Gaussians` (``quats`` unit, ``scales`` linear, ``opacities`` in [0, 1]).
        """
        return self.gaussians_at_times([t])[0]


def save_model(model: Gaussians4D, directory: str | Path) -> Path:
    """Write ``directory/model/`` (canonical parameters + deformation field + meta)."""
    from safetensors.torch import save_file

    root = Path(directory) / "model"
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.params.items()}, str(root / "gaussians.safetensors"))
    model.deformation.save_pretrained(str(root / "deformation"))
    meta = {"num_frames": model.num_frames, "sh_degree": model.sh_degree, "num_gaussians": model.num}
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


def save_fit(directory: str | Path, model: Gaussians4D, config: Gs4dConfig) -> Path:
    """Save a fit: ``config.json`` and ``model/`` under ``directory``.

    Returns:
        ``directory`` as a Path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
    save_model(model, directory)
    return directory


def load_fit(directory: str | Path, device: str | torch.device = "cpu") -> tuple[Gaussians4D, Gs4dConfig]:
    """Load a fit written by :func:`save_fit` (or ``charactershot fit4d``).

    Args:
        directory: the fit directory.
        device: where to put the model.

    Returns:
        ``(model, config)``; the model is in eval mode without gradients.

    Raises:
        FileNotFoundError: if ``config.json`` or ``model/`` is missing.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    root = directory / "model"
    for path in (directory / "config.json", root / "gaussians.safetensors", root / "meta.json", root / "deformation"):
        if not path.exists():
            raise FileNotFoundError(f"{directory} is not a gs4d fit directory: {path.name} is missing")
    config = Gs4dConfig.from_json(json.loads((directory / "config.json").read_text()))
    meta = json.loads((root / "meta.json").read_text())
    params = load_file(str(root / "gaussians.safetensors"))
    deformation = DeformationField.from_pretrained(str(root / "deformation"))
    model = Gaussians4D(params, deformation, meta["num_frames"]).to(device)
    model.eval().requires_grad_(False)
    return model, config
