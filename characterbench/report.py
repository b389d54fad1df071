"""``characterbench report``: pictures of a result record.

- ``heatmap_<metric>.png``: the per-cell means over samples (views x frames for multiview, views for
  A-pose), one per image metric, values written in the cells;
- ``worst_<metric>.png`` (needs the prediction folder and the ground truth): a contact sheet of the
  worst cells over all samples, prediction | ground truth | absolute difference;
- ``summary.md``: the headline numbers and links to the pictures.

Drawn with Pillow only (no plotting dependency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from characterbench.results import Results
from characterbench.metric_specs import METRICS

# Anchors of the viridis colour map (matplotlib's), interpolated linearly.
_VIRIDIS = np.array(
    [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
     [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]],
    dtype=np.float64,
)


def colormap(t: np.ndarray) -> np.ndarray:
    """Viridis colours of values in [0, 1].

    Args:
        t: Any shape, values in [0, 1] (clipped).

    Returns:
        ``t.shape + (3,)`` uint8 RGB.
    """
    x = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (x - lo)[..., None]
    return np.round(_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def heatmap(
    values: np.ndarray, row_labels: list[str], col_labels: list[str], title: str, higher_is_better: bool, cell: int = 56
) -> Image.Image:
    """Draw a heat map with the value written in each cell.

    Colours run from the worst (dark) to the best (bright) value of the map, whichever the metric's
    direction, so that weak cells always stand out the same way.

    Args:
        values: ``[R, C]``.
        row_labels: ``R`` labels (left).
        col_labels: ``C`` labels (top).
        title: Line above the map.
        higher_is_better: The metric's direction.
        cell: Cell side in pixels.

    Returns:
        An RGB image.
    """
    values = np.asarray(values, dtype=np.float64)
    rows, cols = values.shape
    left, top, bottom = 70, 60, 30
    image = Image.new("RGB", (left + cols * cell + 20, top + rows * cell + bottom), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(12)
    lo, hi = np.nanmin(values), np.nanmax(values)
    t = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    colours = colormap(t if higher_is_better else 1.0 - t)
    draw.text((left, 8), title, fill="black", font=font)
    for j, label in enumerate(col_labels):
        draw.text((left + j * cell + cell / 2, top - 8), label, fill="black", font=small, anchor="ms")
    for i, label in enumerate(row_labels):
        draw.text((left - 6, top + i * cell + cell / 2), label, fill="black", font=small, anchor="rm")
        for j in range(cols):
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            colour = tuple(int(c) for c in colours[i, j])
            draw.rectangle(box, fill=colour)
            ink = "black" if sum(colour) > 380 else "white"
            draw.text((box[0] + cell / 2, box[1] + cell / 2), _fmt(values[i, j]), fill=ink, font=small, anchor="mm")
    note = f"worst (dark) {_fmt(lo if higher_is_better else hi)} .. best (bright) {_fmt(hi if higher_is_better else lo)}"
    draw.text((left, top + rows * cell + 8), note, fill="black", font=small)
    return image


@dataclass(frozen=True)
class WorstCell:
    """One cell of one sample, with its value."""

    key: str
    cell: tuple[int, ...]
    value: float


def worst_cells(results: Results, metric: str, count: int) -> list[WorstCell]:
    """The ``count`` worst cells over all samples for an image metric.

    Args:
        results: A result record.
        metric: An image metric present in the record.
        count: How many.

    Returns:
        Cells from worst to better (ties in sample/cell order).

    Raises:
        KeyError: The metric has no per-cell values in the record.
    """
    if metric not in results.grid.values:
        raise KeyError(f"metric {metric!r} has no per-cell values in the record; per-cell metrics: {sorted(results.grid.values)}")
    sign = -1.0 if METRICS[metric].higher_is_better else 1.0
    from characterbench.tasks import get_task

    task = get_task(results.task)
    g = results.grid
    axes = (g.row_axis, g.row_labels, g.col_axis, g.col_labels)
    found = []
    for s in results.per_sample:
        grid = np.asarray(s.grid[metric])
        for i in range(len(g.row_labels)):
            for j in range(len(g.col_labels)):
                found.append(WorstCell(s.key, task.cell_of(axes, i, j), float(grid[i, j])))
    found.sort(key=lambda w: -sign * w.value)
    return found[:count]


def contact_sheet(results: Results, metric: str, pred: str | Path, gt: str | Path, count: int = 12, thumb: int = 160) -> Image.Image:
    """Contact sheet of the worst cells: prediction | ground truth | |difference| x 4 per row.

    Args:
        results: A result record.
        metric: An image metric of the record.
        pred: The prediction folder that was evaluated.
        gt: The ground truth that was evaluated.
        count: Rows.
        thumb: Side of each thumbnail.

    Returns:
        An RGB image.

    Raises:
        KeyError: Metric without per-cell values.
        FileNotFoundError: A prediction image is missing.
    """
    import torch

    from character4d.format import open_samples
    from characterbench import protocol as P
    from characterbench.predictions import read_prediction
    from characterbench.tasks import get_task

    task = get_task(results.task)

    protocol = P.Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in results.protocol.items()})
    cells = worst_cells(results, metric, count)
    wanted = {c.key for c in cells}
    if not Path(gt).exists():
        raise FileNotFoundError(f"ground truth {gt} does not exist")
    samples = {s.key: s for s in open_samples(gt, keys=wanted)}
    font = _font(13)
    label_h, head = 20, 24
    sheet = Image.new("RGB", (3 * thumb + 40, head + len(cells) * (thumb + label_h) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(("prediction", "ground truth", "|difference| x 4")):
        draw.text((10 + k * (thumb + 10) + thumb / 2, 6), name, fill="black", font=font, anchor="mt")

    def prepare(array: np.ndarray) -> torch.Tensor:
        return P.prepare_images([array], thumb, protocol)[0]

    for row, c in enumerate(cells):
        sample = samples[c.key]
        gt_img = task.read_gt(sample, c.cell)
        path = task.pred_path(pred, c.key, c.cell)
        if not path.exists():
            path = task.pred_path(pred, c.key, c.cell, ".npy")
        pr, g = prepare(read_prediction(path)), prepare(gt_img)
        diff = ((pr - g).abs() * 4).clamp(0, 1)
        y = head + row * (thumb + label_h)
        where = f"view {c.cell[0]:02d}" + (f" frame {c.cell[1]:03d}" if len(c.cell) == 2 else " A-pose")
        draw.text((10, y + 2), f"{c.key}  {where}  {METRICS[metric].label} = {_fmt(c.value)}", fill="black", font=font)
        for k, t in enumerate((pr, g, diff)):
            tile = Image.fromarray((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            x0, y0 = 10 + k * (thumb + 10), y + label_h
            sheet.paste(tile, (x0, y0))
            draw.rectangle((x0 - 1, y0 - 1, x0 + thumb, y0 + thumb), outline=(160, 160, 160))
    return sheet


def write_report(
    results: Results, out: str | Path, pred: str | Path | None = None, gt: str | Path | None = None, worst: int = 12
) -> list[Path]:
    """Write the heat maps, the contact sheets (when ``pred`` and ``gt`` are given) and a summary.

    Args:
        results: A result record.
        out: Output folder (created).
        pred: Prediction folder, for the contact sheets.
        gt: Ground truth, for the contact sheets.
        worst: Rows of each contact sheet.

    Returns:
        The files written.

    Raises:
        ValueError: Only one of ``pred`` and ``gt`` was given.
    """
    if (pred is None) != (gt is None):
        raise ValueError("pred and gt: give both (for the worst-cell contact sheets) or neither")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    g = results.grid
    rows = [f"v{v:02d}" for v in g.row_labels]
    cols = [f"f{f:03d}" for f in g.col_labels] if g.col_axis == "frame" else ["A-pose"]
    for metric, values in g.values.items():
        spec = METRICS[metric]
        title = f"{spec.label} ({'higher' if spec.higher_is_better else 'lower'} is better), mean of {results.sample_count} samples"
        path = out / f"heatmap_{metric}.png"
        heatmap(np.asarray(values), rows, cols, title, spec.higher_is_better).save(path)
        written.append(path)
        if pred is not None:
            path = out / f"worst_{metric}.png"
            contact_sheet(results, metric, pred, gt, worst).save(path)
            written.append(path)
    lines = [
        f"# CharacterBench report: {results.label or 'unnamed'} ({results.task})",
        "",
        f"Protocol {results.protocol_version} (`{results.protocol_fingerprint[:12]}`), {results.sample_count} samples, "
        f"ground truth `{results.gt_manifest_hash[:19]}`, {results.date}, {results.device}.",
        "",
        "| metric | value | 95% bootstrap interval |",
        "| --- | --- | --- |",
    ]
    for metric, value in results.metrics.items():
        iv = results.intervals.get(metric)
        lines.append(f"| {METRICS[metric].label} | {_fmt(value)} | {f'[{_fmt(iv.low)}, {_fmt(iv.high)}]' if iv else ''} |")
    lines += [""] + [f"![{p.stem}]({p.name})" for p in written]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    return written + [summary]
