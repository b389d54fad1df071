"""Fixtures of the characterbench tests: a tiny ground truth (2 samples, 21 views x 25 frames, 32 px),
prediction folders built from it, and a protocol override that keeps v1's views, frames and code path
but scores at 32 px (so the suite stays fast on 2 CPU cores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from characterbench.protocol import PROTOCOL_V1
from tests.character4d.fake_sample import make_fake_sample

KEYS = ("alice__walk", "bob__jump")
SIZE = 32
# Same views, frames, filters and metrics as v1; only the image resolution differs (version "+custom").
SMALL = PROTOCOL_V1.replace(image_resolution=SIZE)
OVERRIDE = ["--override", f"image_resolution={SIZE}"]


def require_weights(*names: str) -> None:
    """Skip the calling test unless the named metric weights are fetched."""
    from metrics.weights import FETCH_COMMAND, weights_status

    for name, status in weights_status(names=list(names), verify=False).items():
        if not status.ok:
            pytest.skip(f"weights {name!r} not fetched ({status.path}); run `{FETCH_COMMAND}`")


def fake_samples():
    return [make_fake_sample(key, views=21, frames=25, size=SIZE, seed=i) for i, key in enumerate(KEYS)]


@pytest.fixture(scope="session")
def gt_shard(tmp_path_factory) -> Path:
    """The ground truth as one webdataset shard."""
    from character4d.format import ShardWriter

    path = tmp_path_factory.mktemp("gt") / "test-00000.tar"
    with ShardWriter(path) as writer:
        for sample in fake_samples():
            writer.write(sample)
    return path


@pytest.fixture(scope="session")
def gt_folder(tmp_path_factory) -> Path:
    """The same ground truth as a folder export."""
    from character4d.format import write_folder_sample

    root = tmp_path_factory.mktemp("gt_folder")
    for sample in fake_samples():
        write_folder_sample(sample, root)
    return root


@pytest.fixture(scope="session")
def baselines(gt_shard, tmp_path_factory) -> dict[str, Path]:
    """The three baseline prediction folders, built once (read-only for the tests: copy to modify)."""
    from characterbench.baselines import BASELINE_NAMES, make_baseline

    root = tmp_path_factory.mktemp("baselines")
    return {name: make_baseline(name, gt_shard, root / name, PROTOCOL_V1, progress=False) for name in BASELINE_NAMES}


@pytest.fixture
def gt_pred(baselines, tmp_path) -> Path:
    """A writable copy of the ground-truth prediction folder."""
    return Path(shutil.copytree(baselines["ground-truth"], tmp_path / "pred"))


@pytest.fixture(scope="session")
def degraded_pred(baselines, tmp_path_factory) -> Path:
    """Ground truth with gaussian noise (sigma 0.08) and a 1-pixel shift: every metric must get worse."""
    root = Path(shutil.copytree(baselines["ground-truth"], tmp_path_factory.mktemp("degraded") / "pred"))
    rng = np.random.default_rng(0)
    for path in sorted(root.rglob("*.png")):
        if path.relative_to(root).parts[1] == "pose":  # the pose task's maps stay as they are
            continue
        rgba = np.asarray(Image.open(path)).astype(np.float64) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])  # composite on white
        rgb = np.roll(rgb, 1, axis=1) + rng.normal(0.0, 0.08, rgb.shape)
        Image.fromarray((rgb.clip(0, 1) * 255).round().astype(np.uint8), "RGB").save(path)
    return root



class StandInI3D(torch.nn.Module):
    """A cheap stand-in for I3D with its interface (``[N, 3, T, 224, 224]`` in [-1, 1] -> ``[N, 400]``).

    Features are a fixed random projection of 4 x 4 average-pooled frames, averaged over time plus
    their temporal differences, so that they react to content, order and motion. Not FVD: it tests
    the plumbing (clip construction, pooling, sums, bootstrap) without the weights.
    """

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(2 * 3 * 16, 400, generator=g) / 10)
        self.proj_param = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # gives a device/dtype

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        n, c, t = videos.shape[:3]
        pooled = torch.nn.functional.adaptive_avg_pool3d(videos, (t, 4, 4)).permute(0, 2, 1, 3, 4).reshape(n, t, -1)
        motion = (pooled[:, 1:] - pooled[:, :-1]).abs().mean(dim=1)
        return torch.cat([pooled.mean(dim=1), motion], dim=1) @ self.proj


@pytest.fixture
def stand_in_i3d(monkeypatch):
    """Replace the I3D weights and model by :class:`StandInI3D` for one test."""
    import characterbench.metric_specs as metric_specs
    import metrics.i3d

    monkeypatch.setattr(metrics.i3d, "load_i3d", lambda device=None, home=None: StandInI3D().to(device or "cpu"))
    monkeypatch.setattr(metric_specs, "_checked_weight_hash", lambda name, *a, **k: "stand-in")
