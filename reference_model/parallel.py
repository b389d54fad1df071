"""Spreading a generation over processes: view groups and the two guidance halves (torch.distributed).

A 21-view generation is 5 independent denoising runs (the view groups of ``pipeline.view_groups``), each a
batch of two under classifier-free guidance (negative prompt, prompt). With ``W`` processes:

- ``split_guidance`` (default when ``W`` is even): processes pair up into ``W / 2`` teams; in a team, the
  first process computes the negative-prompt half and the second the prompt half of every forward, and the
  two exchange their outputs each step (``all_gather`` of one latent-sized tensor), so both step the
  scheduler identically. Teams take the groups round-robin.
- otherwise each process takes groups round-robin and computes both halves itself.

At the end every group's latents are broadcast from the process that made them, so every process returns
the same result. The initial noise of all groups is drawn in group order on every process, so the result
equals the single-process one (up to the float rounding of a batch of one vs. two).

Launch with ``torchrun --nproc-per-node N ...`` (or ``accelerate launch``); NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["ParallelContext", "init_from_environment"]

_CACHE: dict[tuple[int, int, bool], "ParallelContext"] = {}


@dataclass(frozen=True)
class ParallelContext:
    """How this process shares a generation with the others.

    Attributes:
        world_size: Number of processes (1: no distribution).
        rank: This process's rank.
        split_guidance: Whether pairs of processes share each forward's guidance halves.
        team_group: The process group of this process's team (``split_guidance`` only).
    """

    world_size: int = 1
    rank: int = 0
    split_guidance: bool = False
    team_group: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank/world_size: expected 0 <= rank < world_size, got {self.rank}/{self.world_size}")
        if self.split_guidance and self.world_size % 2:
            raise ValueError(f"split_guidance: needs an even number of processes, got {self.world_size}")

    @classmethod
    def current(cls, split_guidance: bool | None = None) -> "ParallelContext":
        """The context of the initialised default process group (single process when there is none).

        Args:
            split_guidance: Pair processes for the guidance halves; default: when the world size is even.

        Returns:
            The context (cached: its process groups are created once, by every process, in the same order).
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        world, rank = dist.get_world_size(), dist.get_rank()
        split = world % 2 == 0 if split_guidance is None else bool(split_guidance)
        key = (world, rank, split)
        if key not in _CACHE:
            team = None
            if split:
                for t in range(world // 2):  # every process creates every subgroup (a collective)
                    g = dist.new_group([2 * t, 2 * t + 1])
                    if rank // 2 == t:
                        team = g
            _CACHE[key] = cls(world, rank, split, team)
        return _CACHE[key]

    @property
    def teams(self) -> int:
        """Number of teams that take groups (processes, or pairs of them)."""
        return self.world_size // 2 if self.split_guidance else self.world_size

    @property
    def team(self) -> int:
        return self.rank // 2 if self.split_guidance else self.rank

    def owner(self, group_index: int) -> int:
        """Rank that holds the final latents of a group (the first process of its team)."""
        team = group_index % self.teams
        return 2 * team if self.split_guidance else team

    def assign(self, num_groups: int) -> list[int]:
        """Indices of the groups this process denoises."""
        return [g for g in range(num_groups) if g % self.teams == self.team]

    def guidance_half(self) -> int | None:
        """0 (negative prompt) or 1 (prompt) when this process computes one half of each forward, else None."""
        return self.rank % 2 if self.split_guidance else None

    def exchange_guidance_halves(self, out: torch.Tensor, half: int) -> torch.Tensor:
        """Join this process's half ``(1, ...)`` with its partner's: ``(2, ...)`` in (negative, prompt) order."""
        import torch.distributed as dist

        parts = [torch.empty_like(out) for _ in range(2)]
        dist.all_gather(parts, out.contiguous(), group=self.team_group)
        return torch.cat(parts)

    def gather(self, done: dict[int, torch.Tensor], shapes: list[tuple[int, ...]], dtype: torch.dtype,
               device: torch.device) -> dict[int, torch.Tensor]:  # fmt: skip
        """Every group's latents on every process (broadcast from each group's owner).

        Args:
            done: The groups this process denoised, index -> ``shapes[index]`` tensor.
            shapes: Shape of every group's latents.
            dtype, device: Of the latents.

        Returns:
            index -> latents for all groups.
        """
        if self.world_size == 1:
            return done
        import torch.distributed as dist

        out = {}
        for g, shape in enumerate(shapes):
            src = self.owner(g)
            tensor = done[g].contiguous() if self.rank == src else torch.empty(shape, dtype=dtype, device=device)
            dist.broadcast(tensor, src=src)
            out[g] = tensor
        return out


def init_from_environment() -> bool:
    """Initialise the default process group from ``torchrun``'s environment (``WORLD_SIZE`` > 1).

    NCCL when CUDA is available (each process on ``cuda:LOCAL_RANK``), gloo otherwise. Nothing happens
    for a single process or when a group is already initialised.

    Returns:
        Whether a multi-process group is active.
    """
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return dist.get_world_size() > 1
