"""Shared fixtures of the metric tests: fetched weights (skip when absent), test assets, tiny CLIP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch



def _require_weights(name: str) -> None:
    from metrics.weights import FETCH_COMMAND, weights_status

    status = weights_status(names=[name], verify=False)[name]
    if not status.ok:
        pytest.skip(
            f"weights {name!r} not fetched ({status.path} absent or not in the manifest); run `{FETCH_COMMAND}`"
        )


@pytest.fixture(scope="session")
def i3d():
    """The Kinetics-400 I3D with the published weights (skips if not fetched)."""
    _require_weights("i3d_kinetics400")
    from metrics.i3d import load_i3d

    return load_i3d()


@pytest.fixture(scope="session")
def i3d_constant_logits(i3d):
    """Logits of constant -1 and +1 clips (224 x 224) per T, computed once per session: ``T -> [2, 400]``."""
    cache: dict[int, torch.Tensor] = {}

    def get(num_frames: int) -> torch.Tensor:
        if num_frames not in cache:
            clips = torch.stack([torch.full((3, num_frames, 224, 224), v) for v in (-1.0, 1.0)])
            with torch.no_grad():
                cache[num_frames] = i3d(clips).double()
        return cache[num_frames]

    return get


@pytest.fixture(scope="session")
def lpips_nets():
    """``net -> LPIPSNet`` with the published weights, loaded on first use (skips if not fetched)."""
    cache = {}

    def get(net: str):
        if net not in cache:
            _require_weights(f"lpips_{net}")
            from metrics.lpips import load_lpips

            cache[net] = load_lpips(net)
        return cache[net]

    return get


@pytest.fixture(scope="session")
def assets() -> Path:
    """The shared third-party assets folder (skips without ../shared/assets; fails under CI=true)."""
    from tests.conftest import shared_assets

    return shared_assets()


def load_image(path: Path) -> torch.Tensor:
    """An RGB PNG as ``[1, 3, H, W]`` float32 in [0, 1]."""
    from PIL import Image

    array = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()

