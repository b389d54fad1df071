"""A disk cache of encoded latents, keyed by sample, view, frames and every setting that changes them.

With the CogVideoX VAE, encoding the clips is a large part of a training step; the released code encodes
its whole data set once beforehand (``finetune/prepare_multiview_cache.py``). Here latents are written
the first time a (sample, view, frames, kind) is encoded and read back afterwards, one safetensors file
each, under a folder named by the hash of the codec's and the data's settings, so a changed codec,
canvas or pose source never reads stale latents. Writes are atomic (temporary name, then rename), so
several ranks may share one cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["LatentCache"]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class LatentCache:
    """Latents on disk, one file per (sample, kind, view, frames).

    Args:
        folder: the cache root.
        settings: everything that changes the latents (codec config, canvas size, pose source...).

    Attributes:
        hits, misses: counts of entries read and written, for logging.
    """

    def __init__(self, folder: str | os.PathLike, settings: dict[str, Any]) -> None:
        self.root = Path(folder) / _digest(settings)[:16]
        self.root.mkdir(parents=True, exist_ok=True)
        settings_file = self.root / "settings.json"
        if not settings_file.exists():
            settings_file.write_text(json.dumps(settings, sort_keys=True, indent=1, default=str))
        self.hits = self.misses = 0

    def path(self, sample_key: str, kind: str, view: int, frames: Sequence[int]) -> Path:
        name = _digest([sample_key, kind, int(view), [int(f) for f in frames]])
        return self.root / name[:2] / f"{name}.safetensors"

    def get_or_encode(self, paths: Sequence[Path], encode: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The latents of ``paths`` (one entry each), read when all exist, else encoded and written.

        Args:
            paths: one cache path per row of the result.
            encode: computes all rows at once, ``[len(paths), ...]``.

        Returns:
            ``[len(paths), ...]`` on the device ``encode`` uses (or the CPU when read).
        """
        from safetensors.torch import load_file, save_file

        if all(p.is_file() for p in paths):
            self.hits += len(paths)
            return torch.stack([load_file(p)["latents"] for p in paths])
        latents = encode()
        for path, row in zip(paths, latents):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file({"latents": row.detach().contiguous().cpu()}, str(tmp))
            os.replace(tmp, path)
        self.misses += len(paths)
        return latents
