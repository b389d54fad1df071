"""Fixtures shared by the test packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The third-party test assets live beside the repository, never inside it (../shared/assets/README.md).
SHARED_ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def shared_assets() -> Path:
    """The ``../shared/assets`` folder.

    A fresh clone has no ``../shared``: there the tests that need it skip with the reason. CI always has
    it beside the clone, so under ``CI=true`` a missing folder is a failure, never a silent skip.
    """
    if SHARED_ASSETS.is_dir():
        return SHARED_ASSETS
    message = f"third-party test assets not found at {SHARED_ASSETS} (they live beside the repository, in ../shared)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised CLIPModel (32 x 32 images) saved with ``save_pretrained``.

    CLIP weights ship in no package registry, so CLIP-S is tested through its real loading path with
    this stand-in; its scores mean nothing beyond the identities the tests check.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            vocab_size=99, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        projection_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(config).save_pretrained(path)
    return path
