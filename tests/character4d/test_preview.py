"""Tests of character4d.preview: the contact sheet puts each image in its tile; previews are small."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from character4d.format import Sample, encode_png, frame_name
from character4d.preview import contact_sheet, write_preview
from tests.character4d.fake_sample import fake_colour, fake_pose_colour, make_fake_sample


def _centre(sheet: Image.Image, row: int, column: int, cell: int) -> tuple[int, int, int]:
    return sheet.getpixel((column * cell + cell // 2, row * cell + cell // 2))


@pytest.mark.parametrize("cell", [32, 64])
def test_rgb_sheet_puts_each_view_and_frame_in_its_tile(cell):
    sample = make_fake_sample(views=4, frames=5, size=16, solid=True)
    sheet = contact_sheet(sample, cell=cell)
    assert sheet.mode == "RGB" and sheet.size == (6 * cell, 4 * cell)
    for v in range(4):
        assert _centre(sheet, v, 0, cell) == fake_colour(v, None)
        for f in range(5):
            assert _centre(sheet, v, 1 + f, cell) == fake_colour(v, f)


def test_subsets_and_pose_rows():
    sample = make_fake_sample(views=4, frames=5, size=16, solid=True)
    sheet = contact_sheet(sample, views=[3, 1], frames=[4, 0], cell=32, kind="pose")
    assert sheet.size == (3 * 32, 2 * 32)
    assert _centre(sheet, 0, 0, 32) == fake_colour(3, None)  # the A-pose reference
    assert _centre(sheet, 0, 1, 32) == fake_pose_colour(3, 4)
    assert _centre(sheet, 1, 2, 32) == fake_pose_colour(1, 0)
    both = contact_sheet(sample, views=[2], frames=[1], cell=32, kind="both", background="white")
    assert both.size == (2 * 32, 2 * 32)
    assert _centre(both, 0, 1, 32) == fake_colour(2, 1)
    assert _centre(both, 1, 1, 32) == fake_pose_colour(2, 1)
    assert _centre(both, 1, 0, 32) == (255, 255, 255)  # no pose map for the A-pose


def test_transparency_is_composited_over_the_background():
    base = make_fake_sample(views=1, frames=1, size=16, solid=True)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[..., 3] = 128
    rgba[:8, :8, 3] = 0  # fully transparent corner: 16 x 16 pixels of a 32-pixel tile
    sample = Sample(base.key, {**base.files, frame_name(0, 0): encode_png(rgba)})
    white = contact_sheet(sample, cell=32, background="white")
    alpha = 128 / 255
    expected = tuple(round(c * alpha + 255 * (1 - alpha)) for c in (200, 40, 0))
    assert all(abs(a - b) <= 1 for a, b in zip(white.getpixel((32 + 24, 24)), expected))
    checker = contact_sheet(sample, cell=32)
    assert checker.getpixel((32 + 1, 1)) == (255, 255, 255)
    assert checker.getpixel((32 + 8 + 1, 1)) == (228, 228, 228)


def test_labels_are_drawn_in_large_cells_only():
    sample = make_fake_sample(views=1, frames=1, size=16, solid=True)
    small, large = contact_sheet(sample, cell=32), contact_sheet(sample, cell=64)
    dark = lambda image: (np.asarray(image) < 100).all(axis=-1)  # noqa: E731 - the label text is black
    assert dark(large)[2:14, 66:90].any() and dark(large)[2:14, 2:30].any()  # "f000" and "v00 A-pose"
    assert not dark(small).any()


def test_contact_sheet_rejects_bad_arguments():
    sample = make_fake_sample()
    with pytest.raises(ValueError, match="kind"):
        contact_sheet(sample, kind="depth")
    with pytest.raises(ValueError, match="views"):
        contact_sheet(sample, views=[3])
    with pytest.raises(ValueError, match="frames"):
        contact_sheet(sample, frames=[])


def test_write_preview(tmp_path):
    sample = make_fake_sample(views=21, frames=25, size=16, solid=True)
    png, gif = write_preview(sample, tmp_path / "preview", cell=32, gif_cell=32)
    assert png == tmp_path / "preview" / "c0__m0.png" and gif.suffix == ".gif"
    with Image.open(png) as sheet:
        assert sheet.size == (10 * 32, 14 * 32)  # 9 frames + A-pose, 7 views x (rgb, pose)
    with Image.open(gif) as animation:
        assert animation.size == (64, 32) and animation.n_frames == 25
        animation.seek(7)
        frame = animation.convert("RGB")
        assert frame.getpixel((16, 16)) == fake_colour(0, 7)
        assert frame.getpixel((48, 16)) == fake_pose_colour(0, 7)
    assert gif.stat().st_size < 100_000
