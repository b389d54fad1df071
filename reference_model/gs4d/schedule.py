"""The optimisation schedule: a coarse stage on one frame, progressive windows that widen, then all frames.

The windows follow the research code's rule (WideRange4D-style): start from the coarse frame, add
``window_growth`` frames on each side per window (4 on the open side once one end is reached), clamp at
the clip. The research code computed these windows but its loader then ignored them (DESIGN.md 8.4); here
:class:`FrameSampler` draws every step's frame from the current stage's window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference_model.gs4d.config import Gs4dConfig


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule.

    Attributes:
        name: ``"coarse"``, ``"window{i}"`` or ``"final"``.
        frames: frames the loader draws from.
        steps: optimiser steps.
        anchor: the previous stage's frames (the window whose edge the neighbour loss holds to), or None.
        deform: whether the deformation field is on (off in the coarse stage, 4DGS).
    """

    name: str
    frames: tuple[int, ...]
    steps: int
    anchor: tuple[int, ...] | None
    deform: bool


def research_windows(num_frames: int, coarse: int, growth: int = 2, count: int | None = None) -> list[tuple[int, int]]:
    """Inclusive frame ranges of the progressive windows (the research code's rule, clamped to the clip).

    ``count=None`` stops once the clip is covered; the research code runs ``num_frames // 4 + 2`` windows
    (the last ones cover the clip again).
    """
    lo = hi = coarse
    last = num_frames - 1
    out = []
    n = count if count is not None else num_frames  # enough to cover
    for _ in range(n):
        if hi < last and lo > 1:
            lo, hi = lo - growth, hi + growth
        elif hi >= last and lo > 1:
            lo, hi = lo - 2 * growth, last
        elif lo <= 1 and hi < last:
            lo, hi = 0, hi + 2 * growth
        else:
            lo, hi = 0, last
        lo, hi = max(lo, 0), min(hi, last)
        out.append((lo, hi))
        if count is None and (lo, hi) == (0, last):
            break
    return out


def build_schedule(config: Gs4dConfig, num_frames: int, train_frames: tuple[int, ...] | None = None) -> list[Stage]:
    """The stages of a fit.

    Args:
        config: the fit configuration (``coarse_steps``, ``window_steps``, ``final_steps``, ``progressive``).
        num_frames: frames of the clip.
        train_frames: frames the split allows (None: all).

    Returns:
        Stages in order (empty ones dropped). Without ``progressive`` the windows' steps go to the final
        stage, so every ablation runs the same number of steps.

    Raises:
        ValueError: if the coarse frame is not a training frame.
    """
    allowed = tuple(range(num_frames)) if train_frames is None else tuple(sorted(train_frames))
    coarse = config.coarse_frame if config.coarse_frame is not None else num_frames // 2
    if coarse not in allowed:
        coarse = min(allowed, key=lambda f: abs(f - coarse))
    research = config.preset == "research"
    windows = research_windows(num_frames, coarse, config.window_growth, num_frames // 4 + 2 if research else None)
    # The research code gives later windows more steps: 3000 + 500 * (i // 5).
    window_steps = [config.window_steps + (500 * (i // 5) if research else 0) for i in range(len(windows))]
    stages = [Stage("coarse", (coarse,), config.coarse_steps, None, False)]
    previous = (coarse,)
    if config.progressive and num_frames > 1:
        for i, ((lo, hi), steps) in enumerate(zip(windows, window_steps)):
            frames = tuple(f for f in range(lo, hi + 1) if f in allowed)
            stages.append(Stage(f"window{i}", frames, steps, previous, True))
            previous = frames
        final_steps = config.final_steps
    else:
        final_steps = config.final_steps + (sum(window_steps) if num_frames > 1 else 0)
    stages.append(Stage("final", allowed, final_steps, previous, True))
    return [s for s in stages if s.steps > 0]


class FrameSampler:
    """Draws each step's frame from the current stage, uniformly (the loader of the fit).

    Args:
        seed: random seed.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def frame(self, stage: Stage) -> int:
        return int(stage.frames[self.rng.integers(len(stage.frames))])

    def distinct_frames(self, stage: Stage, count: int) -> list[int]:
        """``count`` different frames of the stage (all of them, shuffled, when it has fewer)."""
        picks = self.rng.choice(len(stage.frames), size=min(count, len(stage.frames)), replace=False)
        return [int(stage.frames[i]) for i in picks]

    def views(self, num_views: int, per_step: int) -> np.ndarray:
        """Indices of the training views rendered this step (all of them when ``per_step >= num_views``)."""
        if per_step >= num_views:
            return np.arange(num_views)
        return np.sort(self.rng.choice(num_views, size=per_step, replace=False))


def neighbour_edge(stage: Stage, frame: int) -> int | None:
    """The anchor frame for the neighbour loss at ``frame``: the nearest edge of the previous window when
    ``frame`` lies outside it, else None (research rule)."""
    if stage.anchor is None or not stage.deform:
        return None
    lo, hi = min(stage.anchor), max(stage.anchor)
    if lo <= frame <= hi:
        return None
    return lo if frame < lo else hi
