"""metrics.fid: statistics with a tiny stand-in extractor and the TorchScript loading path.

FID numbers need the real Inception-v3 weights, which no registry ships; these tests check the
accumulation, the Frechet part and the loading/adapter code with stand-ins.
"""

from __future__ import annotations

import pytest
import torch

from metrics.fid import FID, INCEPTION_ENV, fid, inception_features, load_inception
from metrics.fvd import frechet_distance
from metrics.weights import WeightsNotFoundError


class PooledProjection(torch.nn.Module):
    """Stand-in extractor: 4 x 4 average pool and a fixed random projection to 8 features."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 16, 8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1))


class ScriptedInception(torch.nn.Module):
    """The call convention of the StyleGAN/clean-fid TorchScript: uint8 images, ``return_features``."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        feats = torch.nn.functional.adaptive_avg_pool2d(x.float(), 2).flatten(1)  # [N, 12] in [0, 255]
        return feats if return_features else feats.softmax(-1)


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g) ** (1 + seed % 2)


def test_fid_is_the_frechet_distance_of_the_features():
    torch.manual_seed(0)
    model = PooledProjection()
    preds, target = _images(20, 1), _images(15, 2)
    expected = frechet_distance(model(preds).detach(), model(target).detach())
    assert fid(preds, target, model=model, batch_size=6) == pytest.approx(expected, rel=1e-6)


def test_metric_over_batches_equals_functional():
    torch.manual_seed(0)
    model = PooledProjection()
    preds, target = _images(11, 3), _images(9, 4)
    metric = FID(model=model, num_features=8, keep_features=True)
    metric.update(target=target)  # the real set once, e.g. cached statistics
    for i in range(0, 11, 4):
        metric.update(preds[i : i + 4])
    assert metric.compute().item() == pytest.approx(fid(preds, target, model=model), rel=1e-6)
    assert metric.compute_interval(num_resamples=20).num_a == 11


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_loading_path(tmp_path, monkeypatch):
    path = tmp_path / "inception.pt"
    torch.jit.script(ScriptedInception()).save(str(path))
    images = _images(3, 5)
    # The adapter quantises to 8 bits and asks for features.
    expected = torch.nn.functional.adaptive_avg_pool2d((images * 255).round(), 2).flatten(1)
    torch.testing.assert_close(inception_features(images, load_inception(path)), expected)
    monkeypatch.setenv(INCEPTION_ENV, str(path))
    torch.testing.assert_close(load_inception()(images), expected)


def test_missing_inception_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "absent.pt"))
    with pytest.raises(WeightsNotFoundError, match=f"{INCEPTION_ENV}.*FID numbers require"):
        fid(_images(2, 0), _images(2, 1))
