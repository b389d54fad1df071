"""Frozen configuration of a 4D Gaussian fit: model, schedule, losses, split, and the named presets.

Every default says where it comes from: "3DGS" (Kerbl et al. 2023 and its reference code), "4DGS"
(Wu et al. 2024, hustvl/4DGaussians, which the CharacterShot research code forks), "research" (the
released CharacterShot 4D_optimization code, DESIGN.md 8.4), "paper" (CharacterShot, arXiv 2508.07409),
"gsplat" (nerfstudio-project/gsplat 1.5.3 defaults) or "chosen" (set here for a fit of one 512 px character in
under a minute on one GPU: 12 views a step, shared between 3 frames, ~2,000 steps; measured on an H200 with
scripts/bench/gs4d_sweep.py and scripts/bench/gs4d_profile.py, see the field notes).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

# CharacterBench protocol v1 views (DESIGN.md section 7); the default split holds them out.
PROTOCOL_VIEWS: tuple[int, ...] = (0, 2, 5, 7, 9, 12, 14, 16, 19)
PROTOCOL_FRAMES: tuple[int, ...] = (0, 3, 6, 9, 12, 15, 18, 21, 24)
RIG_VIEWS = 21


@dataclass(frozen=True)
class SplitConfig:
    """Which views train the model and which are rendered for scoring.

    Attributes:
        name: ``"heldout"`` (default: train on the 12 rig views outside the protocol's nine, evaluate
            the nine; a fair novel-view prediction), ``"all"`` (train and evaluate on all 21 views, the
            paper's own setting; overlapping), ``"heldout_times"`` (train on every view but only the
            frames outside the protocol's, evaluate the protocol cells; frames are held out, views are not)
            or ``"custom"`` (``train_views`` / ``eval_views`` as given).
        train_views: Rig views used for training (``None``: from ``name``).
        eval_views: Rig views rendered for scoring (``None``: the protocol's nine).
        allow_overlap: A split whose training and evaluation cells overlap is refused unless this is
            True; the ``"all"`` split sets it by name.
    """

    name: str = "heldout"
    train_views: tuple[int, ...] | None = None
    eval_views: tuple[int, ...] | None = None
    allow_overlap: bool = False

    def __post_init__(self) -> None:
        if self.name not in SPLITS:
            raise ValueError(f"SplitConfig.name: expected one of {sorted(SPLITS)}, got {self.name!r}")
        for arg in ("train_views", "eval_views"):
            value = getattr(self, arg)
            if value is not None:
                object.__setattr__(self, arg, tuple(int(v) for v in value))
        if self.name == "custom" and self.train_views is None:
            raise ValueError("SplitConfig: the 'custom' split needs train_views")

    def views(self, num_views: int = RIG_VIEWS) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The (training views, evaluation views) of a rig of ``num_views`` views.

        Raises:
            ValueError: if a view is outside the rig, a list is empty, or the two overlap without
                ``allow_overlap`` (or the ``"all"`` split).
        """
        evals = self.eval_views if self.eval_views is not None else PROTOCOL_VIEWS
        if self.train_views is not None:
            train = self.train_views
        elif self.name in ("all", "heldout_times"):
            train = tuple(range(num_views))
        else:
            train = tuple(v for v in range(num_views) if v not in evals)
        for arg, views in (("train_views", train), ("eval_views", evals)):
            bad = [v for v in views if not 0 <= v < num_views]
            if bad or not views:
                raise ValueError(f"SplitConfig.{arg}: expected views in [0, {num_views}), got {list(views)}")
        overlap = sorted(set(train) & set(evals))
        if overlap and self.name == "heldout":
            raise ValueError(f"SplitConfig: the 'heldout' split trains on evaluation views {overlap}")
        if overlap and not (self.allow_overlap or self.name in ("all", "heldout_times")):
            raise ValueError(
                f"SplitConfig: training and evaluation views overlap ({overlap}); ask for the 'all' split "
                "by name or set allow_overlap=True to fit and score the same views"
            )
        return tuple(train), tuple(evals)

    def train_frames(self, num_frames: int) -> tuple[int, ...]:
        """Frames the model may train on (all but the protocol's for ``"heldout_times"``)."""
        if self.name == "heldout_times":
            return tuple(f for f in range(num_frames) if f not in PROTOCOL_FRAMES)
        return tuple(range(num_frames))

    @property
    def label(self) -> str:
        """Short text for result labels, e.g. ``"train 12 views / eval 9 held-out"``."""
        return {
            "heldout": "12 train views, 9 held-out protocol views",
            "all": "all 21 views trained and scored (not held out)",
            "heldout_times": "21 views, held-out protocol frames",
            "custom": f"train views {list(self.train_views or ())}",
        }[self.name]


SPLITS = ("heldout", "all", "heldout_times", "custom")


@dataclass(frozen=True)
class Gs4dConfig:
    """Everything a fit depends on. Defaults are the toolkit's own configuration ("default" preset).

    Attributes (model):
        sh_degree: Spherical-harmonics degree of the colours (3: 3DGS, research).
        init_points: Gaussians seeded by visual-hull carving (chosen).
        hull_resolution: Voxels along the longest side of the carving box (chosen).
        hull_threshold: Alpha above which a pixel counts as the character when carving (chosen).
        init_opacity: Initial opacity (0.1: 3DGS).
        plane_resolution: HexPlane spatial resolution at multires 1 (64: 4DGS, research).
        time_resolution: HexPlane time resolution (25: 4DGS "half the frame count" advice, research).
        multires: Spatial resolution multipliers (research dnerf_default [1, 2]).
        plane_features: Features per plane (32: 4DGS kplanes output_coordinate_dim).
        mlp_width: Width of the deformation MLP (64: 4DGS, research).
        mlp_depth: 4DGS's ``defor_depth`` (research 0, which builds the same single input layer as 1).
        sh_increase_every: Steps between raising the active SH degree by one (3DGS 1000 at one view a step;
            250 chosen for the shorter schedule).

    Attributes (schedule; "steps" count optimiser steps, each renders ``views_per_step`` views of one frame):
        coarse_steps: Canonical fit on the coarse frame, no deformation (research 3000 at one view a step;
            here 300 at 12 views, chosen, as are ``window_steps`` 100 and ``final_steps``; see
            ``frames_per_step`` for how they were measured).
        window_steps: Steps of each progressive window (research 3000 (+500 every 5 windows) at one view).
        window_growth: Frames added on each side per window (research: 2).
        final_steps: Steps on all frames after the windows (research 20000 at one view). 0 here: the last
            window already spans the clip, and a timing probe on an H200 (``scripts/bench/gs4d_profile.py
            --budget 55``: coarse 52.9 ms, window 71.4 ms a step at 512 px) left no time for more within
            ~60 s; the four board fits took 59.7-61.2 s (``scripts/gpu/gs4d_run.sh``).
        views_per_step: Training views rendered per step (research 1; here all training views, chosen).
        frames_per_step: Frames those views are shared between (1: every view at one time, as the research
            code's one image a step; more gives the deformation field several times per step, as 4DGS's
            batches of timestamps on its multi-view datasets). Measured on an H200 (ada__dance, 512 px,
            2,300 steps): 3 frames of 4 views gave held-out PSNR 34.72 dB, SSIM 0.9856, LPIPS 0.0335, where one
            frame of 12 views had given 32.12 dB, 0.978, 0.057 after 3,520 steps (scripts/bench/gs4d_sweep.py).
        coarse_frame: The coarse frame (None: the middle frame, ``F // 2``, research).

    Attributes (losses):
        lambda_ssim: Weight of (1 - SSIM) in ``(1 - l) L1 + l (1 - SSIM)`` (0.2: 3DGS; research 0).
        lambda_alpha: Weight of the L1 between rendered and ground-truth alpha (chosen; research 0).
        plane_tv_weight: Spatial plane TV (research 0.0001), time_smoothness_weight: time-plane
            second-difference smoothness (research 0.01), l1_time_planes: L1 of time planes from 1
            (research 0.0001).
        neighbour: Use the neighbour loss (paper, DESIGN.md 8.3).
        neighbour_k: Neighbours per point (20: paper; research code 8).
        neighbour_every: Rebuild the kNN graph every so many steps (research: 200).
        neighbour_gate: Only edges whose both ends moved more than ``neighbour_threshold`` count (research).
        neighbour_threshold: Motion threshold of the gate, metres (research mask_threshold 0.01).
        neighbour_gate_rule: ``"any"``: an edge counts when either end moved (the research code's comment);
            ``"both"``: only when both did (the research code's arithmetic, which ignores a point that
            leaves still neighbours).
        neighbour_weight: Constant loss weight (chosen; on CPU at 32 px, 350 steps, held-out PSNR was
            28.90 dB at 1, 25.61 at 1e3, 24.61 at 1e5: larger weights hold the motion back), or ``None`` for the
            research formula
            ``0.01 / (100 |t - t_edge| + 1) * mean(sigmoid(|dx|))``.
        neighbour_form: ``"norm"`` compares the length of each point's offset from its neighbours' centre
            (zero for any rigid motion); ``"vector"`` compares the offset vectors (research).
        neighbour_points: At most this many points enter the neighbour loss per step, sampled (chosen).

    Attributes (optimisation; 3DGS learning rates unless stated, scaled like gsplat by sqrt(views_per_step)):
        lr_means, lr_means_final: Position learning rate, times the scene scale, exponential decay.
        lr_scales, lr_quats, lr_opacities, lr_sh0, lr_shN: Per-parameter learning rates.
        lr_deformation, lr_deformation_final: MLP learning rate, 1.6e-3 -> 1.6e-4 (measured: 10x 4DGS's
            1.6e-4 -> 1.6e-5, which the research preset keeps; on CPU at 32 px (ada__dance, 350 steps of 3 views)
            1x lost the moving arms and scored 24.3 dB held-out PSNR, 10x 27.2 dB, 30x 28.9 dB, 100x diverged;
            10x is kept for the 10x longer GPU schedule).
        lr_grid, lr_grid_final: HexPlane learning rate, 1.6e-2 -> 1.6e-3 (10x 4DGS's, measured with the above).
        densify_from, densify_until, densify_every: Densification window and interval, in steps (3DGS 500 /
            15000 / 100 at one view a step; here 100 / 2400 / 100, chosen).
        grow_grad2d: Mean screen-space gradient above which a Gaussian grows (0.0002: 3DGS).
        grow_scale3d: Clone below, split above this fraction of the scene scale (0.01: 3DGS).
        prune_opacity: Opacity below which a Gaussian is pruned (0.005: 3DGS, research).
        prune_scale3d: Scale above which a Gaussian is pruned, fraction of scene scale (0.1: gsplat).
        max_gaussians: Densification stops growing above this count (research 360000).
        opacity_reset_every: Reset opacities to 0.01 every so many steps (0 = never; 3DGS 3000).
        restart_per_stage: Learning-rate decay and densification counters restart at every stage (the
            research code calls its training set-up once per stage); False: one schedule over all steps.
        lr_horizon: Steps over which the learning rates decay to their final values (None: the whole schedule,
            or each stage with ``restart_per_stage``; research 20000, 4DGS's position_lr_max_steps).
        seed: Random seed.
        background: Background colour the images are composited on (white: protocol v1, research).
    """

    # model
    sh_degree: int = 3
    init_points: int = 30000
    hull_resolution: int = 96
    hull_threshold: float = 0.3
    init_opacity: float = 0.1
    plane_resolution: int = 64
    time_resolution: int = 25
    multires: tuple[int, ...] = (1, 2)
    plane_features: int = 32
    mlp_width: int = 64
    mlp_depth: int = 1
    sh_increase_every: int = 250
    # schedule
    coarse_steps: int = 300
    window_steps: int = 100
    window_growth: int = 2
    final_steps: int = 0
    views_per_step: int = 12
    frames_per_step: int = 3
    coarse_frame: int | None = None
    progressive: bool = True
    # losses
    lambda_ssim: float = 0.2
    lambda_alpha: float = 0.1
    plane_tv_weight: float = 0.0001
    time_smoothness_weight: float = 0.01
    l1_time_planes: float = 0.0001
    neighbour: bool = True
    neighbour_k: int = 20
    neighbour_every: int = 200
    neighbour_gate: bool = True
    neighbour_threshold: float = 0.01
    neighbour_gate_rule: str = "any"
    neighbour_weight: float | None = 1.0
    neighbour_form: str = "norm"
    neighbour_points: int = 65536
    # optimisation
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_deformation: float = 1.6e-3
    lr_deformation_final: float = 1.6e-4
    lr_grid: float = 1.6e-2
    lr_grid_final: float = 1.6e-3
    lr_batch_scaling: bool = True
    densify_from: int = 100
    densify_until: int = 2400
    densify_every: int = 100
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_opacity: float = 0.005
    prune_scale3d: float = 0.1
    max_gaussians: int = 360000
    opacity_reset_every: int = 0
    restart_per_stage: bool = False
    lr_horizon: int | None = None
    seed: int = 0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    split: SplitConfig = field(default_factory=SplitConfig)
    preset: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.split, dict):
            object.__setattr__(self, "split", SplitConfig(**self.split))
        object.__setattr__(self, "multires", tuple(int(m) for m in self.multires))
        object.__setattr__(self, "background", tuple(float(c) for c in self.background))
        if not 0 <= self.sh_degree <= 3:
            raise ValueError(f"Gs4dConfig.sh_degree: expected 0..3, got {self.sh_degree!r}")
        if self.neighbour_gate_rule not in ("any", "both"):
            raise ValueError(f"Gs4dConfig.neighbour_gate_rule: expected 'any' or 'both', got {self.neighbour_gate_rule!r}")
        if self.neighbour_form not in ("norm", "vector"):
            raise ValueError(f"Gs4dConfig.neighbour_form: expected 'norm' or 'vector', got {self.neighbour_form!r}")
        for name in ("coarse_steps", "window_steps", "final_steps", "window_growth"):
            if getattr(self, name) < 0:
                raise ValueError(f"Gs4dConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        for name in ("views_per_step", "frames_per_step", "init_points", "neighbour_k", "hull_resolution", "neighbour_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"Gs4dConfig.{name}: expected >= 1, got {getattr(self, name)!r}")
        if not 0.0 < self.hull_threshold < 1.0:
            raise ValueError(f"Gs4dConfig.hull_threshold: expected a value in (0, 1), got {self.hull_threshold!r}")

    def replace(self, **changes: Any) -> "Gs4dConfig":
        """A copy with some fields changed (unknown names raise with the closest match)."""
        check_fields(changes)
        if isinstance(changes.get("split"), str):
            changes["split"] = SplitConfig(name=changes["split"])
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Gs4dConfig":
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: for unknown fields (with the closest match).
        """
        data = dict(data)
        check_fields(data)
        if isinstance(data.get("split"), dict):
            data["split"] = SplitConfig(**data["split"])
        for name in ("multires", "background"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)


def check_fields(changes: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming unknown ``Gs4dConfig`` fields and their closest matches."""
    known = [f.name for f in dataclasses.fields(Gs4dConfig)]
    for name in changes:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"Gs4dConfig has no field {name!r}{hint}")


def _research() -> Gs4dConfig:
    # The released CharacterShot schedule and losses (4D_optimization/train.py + arguments/dnerf/dnerf_default.py):
    # 3000 coarse iterations on the middle frame, 8 windows widening by 2 frames a side of 3000 iterations
    # (3500 from the 6th), 20000 iterations on all frames, one image per iteration, L1 only (lambda_dssim 0),
    # k = 8, the vector Laplacian neighbour loss with its dynamic weight, gate threshold 0.01, kNN every 200,
    # TV weights 0.0001 / 0.01 / 0.0001, densification from 500 to 15000 every 100, opacity reset every 3000,
    # deformation depth 0, learning rates decaying over 20000 steps from every stage's start. Unlike it, the
    # Gaussians start from the visual hull (it reads a point-cloud file). What it lacked is fixed: the
    # neighbour loss keeps its gradient and the loader follows the windows. Its window steps grow
    # (3000 + 500 * (i // 5)); see schedule.build_schedule.
    return Gs4dConfig(
        coarse_steps=3000,
        window_steps=3000,
        final_steps=20000,
        views_per_step=1,
        frames_per_step=1,
        lambda_ssim=0.0,
        lambda_alpha=0.0,
        mlp_depth=0,
        neighbour_k=8,
        neighbour_gate_rule="both",
        sh_increase_every=1000,
        restart_per_stage=True,
        lr_horizon=20000,
        neighbour_weight=None,
        neighbour_form="vector",
        neighbour_points=10**9,
        densify_from=500,
        densify_until=15000,
        densify_every=100,
        opacity_reset_every=3000,
        lr_batch_scaling=False,
        lr_deformation=1.6e-4,
        lr_deformation_final=1.6e-6,
        lr_grid=1.6e-3,
        lr_grid_final=1.6e-5,
        preset="research",
    )


PRESETS: dict[str, Any] = {
    "default": lambda: Gs4dConfig(),
    "research": _research,
    "no_neighbour": lambda: Gs4dConfig(neighbour=False, preset="no_neighbour"),
    "no_gate": lambda: Gs4dConfig(neighbour_gate=False, preset="no_gate"),
    "no_progressive": lambda: Gs4dConfig(progressive=False, preset="no_progressive"),
}


def preset(name: str, **changes: Any) -> Gs4dConfig:
    """A named configuration, optionally changed.

    Args:
        name: One of :data:`PRESETS` (``default``, ``research``, ``no_neighbour``, ``no_gate``, ``no_progressive``).
        **changes: Field overrides.

    Raises:
        ValueError: for an unknown preset or field (with the closest match).
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown gs4d preset {name!r}{hint}; known: {', '.join(PRESETS)}")
    config = PRESETS[name]()
    return config.replace(**changes) if changes else config
