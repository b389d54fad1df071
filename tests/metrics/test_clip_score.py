"""metrics.clip_score with a tiny random CLIP saved to a folder and loaded through the real loading path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.clip_score import CLIP_ENV, CLIPScore, clip_score, load_clip
from metrics.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir):
    return load_clip(tiny_clip_dir)


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    # 8-bit values, so that the transformers image processor (which works on 8-bit images) sees the same data.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255


def test_identical_images_score_one(encoder):
    x = _images(3, 48, 0)
    torch.testing.assert_close(clip_score(x, x, encoder), torch.ones(3), atol=1e-6, rtol=0)
    y = _images(3, 48, 1)
    scores = clip_score(x, y, encoder)
    assert scores.shape == (3,) and torch.all(scores < 1) and torch.all(scores >= -1)


def test_matches_transformers_processor_and_model(encoder, tiny_clip_dir):
    # Independent route: the transformers image processor + CLIPModel.get_image_features, cosine by hand.
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(tiny_clip_dir, local_files_only=True).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    x, y = _images(2, 32, 2), _images(2, 32, 3)

    def embed(images):
        arrays = [np.round(im.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for im in images]
        pixels = processor(images=arrays, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            out = model.get_image_features(pixel_values=pixels)
        out = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 vs 5
        return torch.nn.functional.normalize(out, dim=-1)

    expected = (embed(x) * embed(y)).sum(-1)
    torch.testing.assert_close(clip_score(x, y, encoder), expected, atol=1e-5, rtol=1e-5)


def test_metric_over_batches(encoder):
    x, y = _images(5, 32, 4), _images(5, 32, 5)
    metric = CLIPScore(model=encoder)
    metric.update(x[:2], y[:2])
    metric.update(x[2:], y[2:])
    assert metric.compute().item() == pytest.approx(clip_score(x, y, encoder).mean().item(), rel=1e-6)


def test_env_variable_and_missing_model(tiny_clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(CLIP_ENV, str(tiny_clip_dir))
    assert load_clip().image_size == 32
    monkeypatch.setenv(CLIP_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFoundError, match=f"huggingface-cli download.*{CLIP_ENV}"):
        load_clip()
