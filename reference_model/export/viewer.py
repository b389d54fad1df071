"""``charactershot view DIR --out page/``: a self-contained web page that plays a ``.ply`` splat sequence.

The page is one HTML file with everything inlined (the WebGL2 splat renderer of ``splat.js``, the
Gaussians of every frame, the orbit video when there is one), so it opens from disk with no server and
no network. Gaussians are quantised for the page: centres to 16 bits per axis inside the sequence's
bounding box, log-scales to 8 bits, quaternions to 8 bits per component, colours (degree-0 SH) and
opacities to 8 bits; a sequence larger than ``--max-gaussians`` keeps its most visible Gaussians.
Where WebGL2 is missing the page shows the orbit video (or GIF) instead.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from reference_model.export.plyio import PlyError, Splats, read_splats

SH_C0 = 0.28209479177387814  # degree-0 real spherical harmonic, as 3DGS uses for colour
VIDEO_SUFFIXES = {".mp4": "video/mp4", ".webm": "video/webm", ".gif": "image/gif", ".png": "image/png"}


@dataclass(frozen=True)
class ViewerConfig:
    """What the page contains and how it opens.

    Attributes:
        max_gaussians: at most this many Gaussians in the page (the most visible ones, ranked by opacity
            x projected area at the first frame). 65,536 x 25 frames is ~28 MB of page; raise it for
            sharper pages, lower it for lighter ones.
        fps: playback rate (Character4D renders at 15 fps).
        azimuth_deg, elevation_deg, radius, fov_deg, target: the starting camera; the defaults are view 0
            of the Character4D rig (DESIGN.md section 4).
        title: the page title.
    """

    max_gaussians: int = 65536
    fps: float = 15.0
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    radius: float = 3.5
    fov_deg: float = 39.5978
    target: tuple[float, float, float] = (0.0, 0.0, 0.7)
    title: str = "Character4D splats"

    def __post_init__(self) -> None:
        if self.max_gaussians < 1:
            raise ValueError(f"max_gaussians must be >= 1, got {self.max_gaussians}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


@dataclass(frozen=True)
class PageInfo:
    """What `build_page` wrote: ``path``, ``num_frames``, ``num_gaussians`` (in the page, of
    ``source_gaussians``), ``bytes`` and ``video`` (the embedded fallback or None)."""

    path: Path
    num_frames: int
    num_gaussians: int
    source_gaussians: int
    bytes: int
    video: Path | None


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def find_sequence(folder: str | Path) -> list[Path]:
    """The ``.ply`` frames of a sequence folder: ``DIR/*.ply`` or, for a fit directory, ``DIR/ply/*.ply``.

    Args:
        folder: the folder.

    Returns:
        The files in natural order (frame2 before frame10).

    Raises:
        FileNotFoundError: no such folder, or no ``.ply`` file in it or in its ``ply/`` subfolder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    for candidate in (folder, folder / "ply"):
        files = sorted(candidate.glob("*.ply"), key=_natural_key) if candidate.is_dir() else []
        if files:
            return files
    raise FileNotFoundError(f"{folder}: no .ply files in it or in {folder / 'ply'}")


def find_video(folder: str | Path) -> Path | None:
    """The orbit video of a fit directory (``orbit*.mp4/webm/gif`` first, then any such file), or None."""
    folder = Path(folder)
    found = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in (".mp4", ".webm", ".gif")]
    orbit = [p for p in found if p.name.lower().startswith("orbit")]
    return (orbit or found or [None])[0]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def select_gaussians(first: Splats, limit: int) -> np.ndarray:
    """Indices of the ``limit`` most visible Gaussians (opacity x area of the two largest axes), sorted.

    Args:
        first: the first frame.
        limit: how many to keep.

    Returns:
        [min(limit, N)] int64 indices in increasing order.
    """
    if len(first) <= limit:
        return np.arange(len(first))
    s = np.sort(first.log_scales, axis=1)
    score = _sigmoid(first.opacity_logits) * np.exp(s[:, 1] + s[:, 2])
    return np.sort(np.argsort(-score, kind="stable")[:limit])


def pack_sequence(frames: list[Splats], keep: np.ndarray) -> tuple[dict, bytes]:
    """Quantise a sequence for the page.

    Args:
        frames: the Gaussians of every frame (same count, same order).
        keep: indices of the Gaussians to keep.

    Returns:
        (meta dict with ``num_gaussians``, ``num_frames``, ``bbox_min/max``, ``log_scale_range``,
        ``colors_per_frame`` and byte ``segments`` (offset, length)), binary blob).
    """
    means = np.stack([f.means[keep] for f in frames]).astype(np.float64)  # [F, N, 3]
    logs = np.stack([f.log_scales[keep] for f in frames]).astype(np.float64)
    quats = np.stack([f.quats[keep] for f in frames]).astype(np.float64)
    rgb = np.stack([np.clip(0.5 + SH_C0 * f.sh_dc[keep], 0, 1) for f in frames])
    alpha = np.stack([_sigmoid(f.opacity_logits[keep]) for f in frames])[..., None]
    colors = np.round(np.concatenate([rgb, alpha], axis=-1) * 255).astype(np.uint8)  # [F, N, 4]
    # 4D Gaussians change position, scale and rotation over time, not colour: store colours once then.
    per_frame = bool((colors != colors[:1]).any())
    colors = colors if per_frame else colors[:1]

    lo, hi = means.reshape(-1, 3).min(0), means.reshape(-1, 3).max(0)
    hi = np.maximum(hi, lo + 1e-6)
    pos_q = np.round((means - lo) / (hi - lo) * 65535).astype("<u2")
    s_lo, s_hi = float(logs.min()), float(max(logs.max(), logs.min() + 1e-6))
    scl_q = np.round((logs - s_lo) / (s_hi - s_lo) * 255).astype(np.uint8)
    norm = np.linalg.norm(quats, axis=-1, keepdims=True)
    unit = quats / np.where(norm > 0, norm, 1.0)
    unit = np.where(norm > 0, unit, np.array([1.0, 0, 0, 0]))
    rot_q = np.round(unit * 127).astype(np.int8)

    blobs, segments, offset = [], {}, 0
    for name, arr in (("positions", pos_q), ("log_scales", scl_q), ("quats", rot_q), ("colors", colors)):
        data = np.ascontiguousarray(arr).tobytes()
        segments[name] = (offset, len(data))
        blobs.append(data)
        offset += len(data)
    meta = {
        "num_gaussians": int(len(keep)), "num_frames": len(frames), "bbox_min": lo.tolist(), "bbox_max": hi.tolist(),
        "log_scale_range": [s_lo, s_hi], "colors_per_frame": per_frame, "segments": segments,
    }
    return meta, b"".join(blobs)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }}
header {{ padding: 8px 12px; }} #player, #fallback {{ padding: 0 12px; }}
canvas {{ display: block; background: #fff; border: 1px solid #ccc; touch-action: none; cursor: grab; }}
.controls {{ display: flex; gap: 10px; align-items: center; margin: 8px 0; }}
#time {{ width: 360px; }} #status {{ color: #888; font-size: 11px; white-space: pre-wrap; }}
.embed header, .embed .controls, .embed #status {{ display: none; }} .embed #player {{ padding: 0; }}
.embed canvas {{ border: 0; }}
</style></head>
<body data-state="loading">
<header><b>{title}</b> &middot; {summary}</header>
<div id="player">
<canvas id="canvas" width="{size}" height="{size}"></canvas>
<div class="controls"><button id="play">play</button><input id="time" type="range" min="0" max="0" value="0" step="1">
<span id="timelabel"></span><span>drag: orbit &middot; wheel: zoom</span></div>
</div>
<div id="fallback" style="display:none">{fallback}</div>
<noscript>{fallback}</noscript>
<pre id="status">loading</pre>
<script id="meta" type="application/json">{meta}</script>
<script id="data" type="application/octet-stream">{data}</script>
<script>{script}</script>
</body></html>
"""


def _fallback_html(video: Path | None) -> str:
    if video is None:
        return "<p>This page needs WebGL2 to play the splats, and no orbit video was found beside the .ply files.</p>"
    mime = VIDEO_SUFFIXES.get(video.suffix.lower())
    uri = f"data:{mime};base64," + base64.b64encode(video.read_bytes()).decode("ascii")
    if mime.startswith("video/"):
        media = f'<video src="{uri}" autoplay loop muted playsinline controls width="512"></video>'
    else:
        media = f'<img src="{uri}" alt="orbit video" width="512">'
    return f"<p>WebGL2 is not available here: the orbit video of this character instead.</p>{media}"


def build_page(plys: list[Path], out: str | Path, cfg: ViewerConfig = ViewerConfig(), video: Path | None = None,
               size: int = 640) -> PageInfo:
    """Write the viewer page for a ``.ply`` sequence.

    Args:
        plys: the frames, in time order.
        out: output folder (``index.html`` is written into it) or an ``.html`` path.
        cfg: page settings.
        video: orbit video/GIF embedded as the no-WebGL fallback.
        size: canvas size in pixels.

    Returns:
        What was written.

    Raises:
        PlyError: an unreadable file, or frames with different Gaussian counts (4D Gaussians keep one
            set of Gaussians over time; the message names the first file that differs).
        ValueError: an empty sequence or an unsupported video type.
    """
    if not plys:
        raise ValueError("build_page needs at least one .ply frame")
    if video is not None and video.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{video}: unsupported video type; expected one of {sorted(VIDEO_SUFFIXES)}")
    frames = [read_splats(p) for p in plys]
    for p, f in zip(plys, frames):
        if len(f) != len(frames[0]):
            raise PlyError(f"{p}: {len(f)} Gaussians, but {plys[0].name} has {len(frames[0])}; a sequence keeps "
                           "one set of Gaussians over time")
    keep = select_gaussians(frames[0], cfg.max_gaussians)
    meta, blob = pack_sequence(frames, keep)
    meta.update({
        "fps": cfg.fps, "frames": [p.name for p in plys],
        "camera": {"azimuth_deg": cfg.azimuth_deg, "elevation_deg": cfg.elevation_deg, "radius": cfg.radius,
                   "fov_deg": cfg.fov_deg, "target": list(cfg.target)},
    })
    script = resources.files("reference_model.export").joinpath("splat.js").read_text()
    summary = (f"{len(frames)} frames &middot; {len(keep):,} of {len(frames[0]):,} Gaussians"
               + (f" &middot; fallback: {html.escape(video.name)}" if video else ""))
    page = _PAGE.format(
        title=html.escape(cfg.title), summary=summary, size=int(size), fallback=_fallback_html(video),
        meta=json.dumps(meta).replace("</", "<\\/"), data=base64.b64encode(blob).decode("ascii"), script=script,
    )
    out = Path(out)
    path = out if out.suffix.lower() == ".html" else out / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return PageInfo(path, len(frames), len(keep), len(frames[0]), path.stat().st_size, video)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ViewerConfig()
    parser.add_argument("dir", type=Path, help="folder with the .ply sequence (or a fit directory with ply/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (index.html) or .html file")
    parser.add_argument("--video", type=Path, default=None,
                        help="orbit video/GIF shown without WebGL (default: orbit*.mp4/gif found under DIR)")
    parser.add_argument("--max-gaussians", type=int, default=d.max_gaussians,
                        help=f"keep the most visible Gaussians (default {d.max_gaussians})")
    parser.add_argument("--fps", type=float, default=d.fps, help=f"playback rate (default {d.fps:g})")
    parser.add_argument("--size", type=int, default=640, help="canvas size in pixels (default 640)")
    parser.add_argument("--title", default=None, help="page title (default: the folder name)")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = ViewerConfig(max_gaussians=args.max_gaussians, fps=args.fps,
                           title=args.title or f"{Path(args.dir).resolve().name} - Character4D splats")
        plys = find_sequence(args.dir)
        video = args.video if args.video is not None else find_video(args.dir)
        if args.video is not None and not args.video.is_file():
            raise FileNotFoundError(f"{args.video}: no such file")
        start = time.perf_counter()
        info = build_page(plys, args.out, cfg, video=video, size=args.size)
    except (FileNotFoundError, PlyError, ValueError) as exc:
        print(f"charactershot view: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {info.path} ({info.bytes / 1e6:.1f} MB: {info.num_frames} frames, {info.num_gaussians:,} of "
          f"{info.source_gaussians:,} Gaussians, fallback {info.video.name if info.video else 'none'}) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
