"""Quick looks at a sample: a contact sheet (views x frames) and a small animated GIF.

Layout of :func:`contact_sheet`: a grid of square ``cell`` x ``cell`` tiles with no margins, so tile
``(row, column)`` covers ``[column * cell, (column + 1) * cell) x [row * cell, (row + 1) * cell)``.
Column 0 is the A-pose image of the row's view, column ``1 + j`` the ``j``-th requested frame. With
``kind="both"`` each view takes two rows (RGB, then pose maps, whose column 0 is left empty).
RGBA images are composited over a light checkerboard (or white); small labels (``v00``, ``f000``)
sit in the top-left corner of the tiles when ``cell >= 48``, and a grey line marks each tile's
left and top border (from the second row/column on).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from character4d.format import Sample

__all__ = ["KINDS", "contact_sheet", "write_preview"]

KINDS = ("rgb", "pose", "both")
BACKGROUNDS = ("checker", "white")
_CHECKER = ((255, 255, 255), (228, 228, 228))
_CHECKER_SQUARE = 8
_GRID = (150, 150, 150)
_MIN_LABEL_CELL = 48  # below this a label would cover most of the tile


def _indices(requested: Sequence[int] | None, count: int, arg: str) -> list[int]:
    if requested is None:
        return list(range(count))
    indices = [int(i) for i in requested]
    if not indices or any(not 0 <= i < count for i in indices):
        raise ValueError(f"{arg}: expected a non-empty list of indices in [0, {count - 1}], got {list(requested)}")
    return indices


def _spread(count: int, limit: int) -> list[int]:
    """Up to ``limit`` evenly spaced indices of ``range(count)``, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, min(count, limit))})


def _background(size: int, background: str) -> Image.Image:
    if background == "white":
        return Image.new("RGBA", (size, size), (255, 255, 255, 255))
    y, x = np.mgrid[:size, :size] // _CHECKER_SQUARE
    colours = np.asarray(_CHECKER, dtype=np.uint8)[(x + y) % 2]
    alpha = np.full((size, size, 1), 255, dtype=np.uint8)
    return Image.fromarray(np.concatenate([colours, alpha], axis=2))


def _tile(array: np.ndarray | None, cell: int, background: str) -> Image.Image:
    """Fit an image into a square tile (aspect kept, centred) over the background."""
    tile = _background(cell, background)
    if array is None:
        return tile
    image = Image.fromarray(array).convert("RGBA")
    scale = cell / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Pillow resizes RGBA with premultiplied alpha, so transparent pixels do not bleed dark fringes.
    resized = image.resize(size, Image.Resampling.BILINEAR)
    layer = Image.new("RGBA", (cell, cell), (0, 0, 0, 0))
    layer.paste(resized, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return Image.alpha_composite(tile, layer)


def _label(draw: ImageDraw.ImageDraw, origin: tuple[int, int], text: str) -> None:
    font = ImageFont.load_default()
    x, y = origin[0] + 2, origin[1] + 2
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(255, 255, 255))
    draw.text((x, y), text, fill=(0, 0, 0), font=font)


def _rows(views: list[int], kind: str) -> list[tuple[int, str]]:
    """(view, row kind) for every row: "rgb" rows show frames, "pose" rows pose maps."""
    if kind == "both":
        return [(v, row) for v in views for row in ("rgb", "pose")]
    return [(v, kind) for v in views]


def _first_column(sample: Sample, v: int, row: str, kind: str) -> np.ndarray | None:
    # A pose row shows the A-pose reference next to the poses, except in "both" where the RGB row above does.
    return None if (row == "pose" and kind == "both") else sample.apose(v)


def contact_sheet(
    sample: Sample,
    views: Sequence[int] | None = None,
    frames: Sequence[int] | None = None,
    cell: int = 128,
    kind: str = "rgb",
    background: str = "checker",
) -> Image.Image:
    """Draw a grid of a sample's images: rows = views, columns = A-pose + frames.

    Args:
        sample: the sample.
        views: view indices, one row (two for ``kind="both"``) each, in this order; default all.
        frames: frame indices, one column each after the A-pose column; default all.
        cell: side of a tile in pixels.
        kind: ``"rgb"`` (frames), ``"pose"`` (pose maps) or ``"both"`` (two rows per view).
        background: ``"checker"`` (light checkerboard) or ``"white"`` behind transparent pixels.

    Returns:
        An RGB image of ``(1 + len(frames)) * cell`` x ``rows * cell`` pixels (see the module docstring).

    Raises:
        ValueError: for an unknown ``kind``/``background``, ``cell < 8`` or out-of-range indices.
        SampleFormatError: if an image the sheet needs is missing or unreadable.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background: expected one of {list(BACKGROUNDS)}, got {background!r}")
    if isinstance(cell, bool) or not isinstance(cell, int) or cell < 8:
        raise ValueError(f"cell: expected an integer >= 8, got {cell!r}")
    view_list = _indices(views, sample.num_views, "views")
    frame_list = _indices(frames, sample.num_frames, "frames")
    rows = _rows(view_list, kind)
    sheet = Image.new("RGB", ((1 + len(frame_list)) * cell, len(rows) * cell))
    draw = ImageDraw.Draw(sheet)
    labelled = cell >= _MIN_LABEL_CELL
    for r, (v, row) in enumerate(rows):
        first = _first_column(sample, v, row, kind)
        sheet.paste(_tile(first, cell, background).convert("RGB"), (0, r * cell))
        for c, f in enumerate(frame_list, start=1):
            image = sample.frame(v, f) if row == "rgb" else sample.pose(v, f)
            sheet.paste(_tile(image, cell, background).convert("RGB"), (c * cell, r * cell))
            if labelled and r == 0:
                _label(draw, (c * cell, 0), f"f{f:03d}")
        if labelled:
            _label(draw, (0, r * cell), f"v{v:02d} " + ("A-pose" if first is not None else "pose"))
    _grid(draw, sheet.size, cell)
    return sheet


def _grid(draw: ImageDraw.ImageDraw, size: tuple[int, int], cell: int) -> None:
    # One-pixel lines on the tile borders, so neighbouring dark pose maps stay apart.
    for x in range(cell, size[0], cell):
        draw.line((x, 0, x, size[1] - 1), fill=_GRID)
    for y in range(cell, size[1], cell):
        draw.line((0, y, size[0] - 1, y), fill=_GRID)


def _gif_frames(sample: Sample, view: int, cell: int) -> list[Image.Image]:
    frames = []
    for f in range(sample.num_frames):
        pair = Image.new("RGB", (2 * cell, cell))
        pair.paste(_tile(sample.frame(view, f), cell, "white").convert("RGB"), (0, 0))
        pair.paste(_tile(sample.pose(view, f), cell, "white").convert("RGB"), (cell, 0))
        frames.append(pair.convert("P", palette=Image.Palette.ADAPTIVE, colors=128))
    return frames


def write_preview(
    sample: Sample,
    out_dir: str | os.PathLike,
    view: int = 0,
    cell: int = 96,
    gif_cell: int = 128,
) -> tuple[Path, Path]:
    """Write a contact sheet PNG and an animated GIF of one view next to its pose maps.

    The sheet shows up to 7 evenly spaced views and up to 9 evenly spaced frames, each view as an
    RGB row and a pose-map row. The GIF plays every frame of ``view`` at the sample's fps, the
    RGB frame (on white) left of its pose map, 128-colour palette to stay small.

    Args:
        sample: the sample.
        out_dir: folder for ``<key>.png`` and ``<key>.gif`` (created if missing).
        view: the view of the GIF.
        cell: tile size of the sheet.
        gif_cell: height of the GIF (its width is twice that).

    Returns:
        ``(png_path, gif_path)``.

    Raises:
        ValueError: if ``view`` is out of range or a size is invalid.
        SampleFormatError: if an image is missing or unreadable.
    """
    _indices([view], sample.num_views, "view")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(sample, _spread(sample.num_views, 7), _spread(sample.num_frames, 9), cell, kind="both")
    png_path = out_dir / f"{sample.key}.png"
    sheet.save(png_path, optimize=True)
    frames = _gif_frames(sample, view, gif_cell)
    gif_path = out_dir / f"{sample.key}.gif"
    duration = max(20, round(1000 / sample.fps))  # browsers clamp faster GIF frames to 100 ms
    frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return png_path, gif_path
