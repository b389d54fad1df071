"""The protocol object and its tensor functions (compositing, resizing, FVD clip construction)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from characterbench import protocol as P
from characterbench.protocol import PROTOCOL_V1, REGISTERED_FINGERPRINTS, Protocol, get_protocol


def test_v1_is_design_section_7():
    assert PROTOCOL_V1.views == (0, 2, 5, 7, 9, 12, 14, 16, 19)
    assert PROTOCOL_V1.frames == tuple(range(0, 25, 3))
    assert PROTOCOL_V1.apose_views == tuple(range(21))
    assert PROTOCOL_V1.background == (1.0, 1.0, 1.0)
    assert (PROTOCOL_V1.fvd_resolution, PROTOCOL_V1.covariance_ddof, PROTOCOL_V1.lpips_net) == (224, 1, "alex")
    assert PROTOCOL_V1.clip_model_id == "openai/clip-vit-base-patch32"
    # The published checkpoints of DESIGN.md section 3.
    assert PROTOCOL_V1.i3d_weights_sha256.startswith("af5c50f0")
    assert PROTOCOL_V1.lpips_alex_weights_sha256.startswith("443c5bc3")


def test_v1_fingerprint_is_pinned():
    # Editing any field of v1 must fail here: publish a new version instead.
    assert PROTOCOL_V1.fingerprint() == REGISTERED_FINGERPRINTS["characterbench-v1"]
    assert get_protocol("characterbench-v1") is PROTOCOL_V1


def test_replace_marks_custom_and_changes_fingerprint():
    custom = PROTOCOL_V1.replace(image_resolution=32)
    assert custom.version == "characterbench-v1+custom"
    assert custom.fingerprint() != PROTOCOL_V1.fingerprint()
    with pytest.raises(dataclass_error()):
        PROTOCOL_V1.image_resolution = 3  # type: ignore[misc]


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_unknown_version_lists_known():
    with pytest.raises(KeyError, match="characterbench-v1"):
        get_protocol("characterbench-v0")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"views": (0, 21)}, "views"),
        ({"frames": (3, 0)}, "frames"),
        ({"resize_filter": "lanczos"}, "resize_filter"),
        ({"views": (0, 2, 5)}, "fvd_d needs a square matrix"),
        ({"lpips_net": "squeeze"}, "lpips_net"),
    ],
)
def test_invalid_protocols_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**changes)


def test_cells_are_view_major():
    cells = PROTOCOL_V1.cells()
    assert len(cells) == 81 and cells[0] == (0, 0) and cells[1] == (0, 3) and cells[9] == (2, 0) and cells[-1] == (19, 24)


def _indexed_matrix(v=9, f=9):
    # matrix[i, j] is a constant frame of value 10 i + j: clip contents can be read back.
    values = torch.arange(v)[:, None] * 10 + torch.arange(f)[None, :]
    return values.float().view(v, f, 1, 1, 1).expand(v, f, 3, 2, 2)


def _ids(clips):
    return clips[..., 0, 0, 0].long().tolist()


def test_fvd_f_clips_are_views_in_time_order():
    clips = P.fvd_clips(_indexed_matrix(), "fvd_f")
    assert clips.shape == (9, 9, 3, 2, 2)
    assert _ids(clips)[2] == [20 + j for j in range(9)]


def test_fvd_v_clips_are_frames_in_view_order():
    clips = P.fvd_clips(_indexed_matrix(), "fvd_v")
    assert _ids(clips)[4] == [10 * i + 4 for i in range(9)]


def test_fvd_d_clip_is_the_diagonal():
    clips = P.fvd_clips(_indexed_matrix(), "fvd_d")
    assert clips.shape[:2] == (1, 9) and _ids(clips)[0] == [11 * i for i in range(9)]


def test_fv4d_clip_is_boustrophedon():
    ids = _ids(P.fvd_clips(_indexed_matrix(), "fv4d"))[0]
    assert len(ids) == 81
    assert ids[:9] == list(range(9))  # view 0, frames 0..8
    assert ids[9:18] == [10 + j for j in range(8, -1, -1)]  # view 1, frames 8..0
    assert ids[18:20] == [20, 21]
    assert sorted(ids) == sorted(10 * i + j for i in range(9) for j in range(9))
    # Consecutive images are neighbours in the matrix (one step in time or view).
    assert all(abs(a - b) in (1, 10) for a, b in zip(ids, ids[1:]))


def test_fvd_clips_errors():
    with pytest.raises(ValueError, match="unknown FVD variant"):
        P.fvd_clips(_indexed_matrix(), "fvd_x")
    with pytest.raises(ValueError, match="square"):
        P.fvd_clips(_indexed_matrix(9, 5), "fvd_d")
    assert [P.clips_per_sample(PROTOCOL_V1, v) for v in P.FVD_VARIANTS] == [9, 9, 1, 1]


def test_composite_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # transparent: background
    rgba[1, 0] = (0, 0, 0, 51)  # 20 % black
    out = P.composite(P.rgba_to_tensor(rgba), (1.0, 1.0, 1.0))
    assert out.shape == (3, 2, 2)
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert out[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(out[:, 1, 0], torch.full((3,), 0.8))


def test_rgb_input_is_opaque_and_float_input_is_checked():
    rgb = np.full((2, 2, 3), 128, np.uint8)
    assert torch.allclose(P.composite(P.rgba_to_tensor(rgb), (1.0, 1.0, 1.0)), torch.full((3, 2, 2), 128 / 255))
    with pytest.raises(ValueError, match="finite values in"):
        P.rgba_to_tensor(np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\|4\]"):
        P.rgba_to_tensor(np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="uint8 or float"):
        P.rgba_to_tensor(np.zeros((2, 2, 3), np.int32))


def test_resize_is_named_antialiased_bilinear():
    from PIL import Image

    images = torch.rand(2, 3, 64, 64)
    assert P.resize(images, 64, "bilinear-antialias") is images  # identity at the target size
    # Against an independent implementation: Pillow's antialiased (support-scaled) bilinear and bicubic.
    x = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    for name, size, pil in (("bilinear-antialias", 16, Image.BILINEAR), ("bicubic-antialias", 24, Image.BICUBIC)):
        expected = np.asarray(Image.fromarray(x, mode="F").resize((size, size), pil)).clip(0, 1)
        got = P.resize(torch.from_numpy(x).expand(1, 3, 64, 64).contiguous(), size, name)[0, 0].numpy()
        np.testing.assert_allclose(got, expected, atol=2e-6)
    # Antialiasing: a 4x downscale of a checkerboard is flat grey, not aliased stripes.
    board = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    flat = P.resize(board.float().expand(1, 3, 64, 64), 16, "bilinear-antialias")
    interior = flat[..., 1:-1, 1:-1]  # the borders see a truncated filter
    assert torch.allclose(interior, torch.full_like(interior, 0.5), atol=1e-6)
    with pytest.raises(ValueError, match="unknown resize filter 'bilinear-antialiased' \\(did you mean"):
        P.resize(images, 16, "bilinear-antialiased")


def test_import_is_light():
    code = (
        "import sys, characterbench, characterbench.protocol, characterbench.tasks, characterbench.results, "
        "characterbench.predictions, characterbench.leaderboard, characterbench.config, characterbench.cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'metrics.i3d', 'bpy') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
