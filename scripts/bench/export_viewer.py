"""Size and load time of `charactershot view` pages in headless Chromium (software WebGL2, SwiftShader).

For each Gaussian count a sequence of 25 frames is generated (a body of Gaussians whose arm swings), or a
real ``.ply`` sequence is used with ``--ply DIR``; the page is built and opened in Chromium, which reports
the time from the page's script start to the first drawn frame (decode, upload, depth sort, draw).

    python scripts/bench/export_viewer.py                          # 16k and 65k Gaussians
    python scripts/bench/export_viewer.py --ply out/fit/ply --counts 0
    python scripts/bench/export_viewer.py --ply out/fit --counts 0 --gt out/board-gt --key KEY --keep out/fit/page

With ``--gt`` the real sequence's page is also checked at two times: Chromium screenshots of the first and the
middle frame from the page's start camera (view 0 of the Character4D rig) must differ, and each one's drawn
pixels (not the white background) are compared with the ground truth's alpha of view 0 at both frames: each
screenshot must match its own frame better than the other one. ``--keep`` leaves the real page there.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from reference_model.export.viewer import ViewerConfig, build_page, find_sequence, find_video

PROPS = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
         + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def synthetic(folder: Path, count: int, frames: int = 25) -> list[Path]:
    rng = np.random.default_rng(0)
    body = rng.normal(size=(count, 3)) * [0.12, 0.08, 0.4] + [0, 0, 0.9]
    arm = body[:, 0] > 0.1
    out = []
    for f in range(frames):
        a = np.sin(2 * np.pi * f / frames)
        means = body.copy()
        means[arm, 2] += a * 0.3 * (means[arm, 0] - 0.1)
        arr = np.zeros((count, len(PROPS)), np.float32)
        arr[:, :3] = means
        arr[:, 6:9] = rng.normal(size=(count, 3)) * 0.3 if f == 0 else arr0[:, 6:9]
        arr[:, 54] = 2.0
        arr[:, 55:58] = np.log(0.01)
        arr[:, 58] = 1.0
        arr0 = arr if f == 0 else arr0
        head = (f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\n"
                + "".join(f"property float {p}\n" for p in PROPS) + "end_header\n")
        path = folder / f"frame{f:03d}.ply"
        path.write_bytes(head.encode() + arr.tobytes())
        out.append(path)
    return out


def chromium_load(page: Path, chromium: str, profile: Path) -> tuple[dict, float]:
    cmd = [chromium, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={profile}", "--window-size=800,800", "--virtual-time-budget=60000", "--dump-dom",
           page.as_uri()]
    t0 = time.perf_counter()
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    wall = time.perf_counter() - t0
    return json.loads(re.search(r'<pre id="status">([^<]*)</pre>', dom).group(1)), wall


def screenshot(page: Path, chromium: str, profile: Path, query: str, size: int) -> np.ndarray:
    """[size, size, 3] uint8 screenshot of the page at ``?embed=1&query``."""
    from PIL import Image

    shot = profile.with_suffix(".png")
    cmd = [chromium, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size},{size}",
           "--virtual-time-budget=60000", f"--screenshot={shot}", page.as_uri() + "?embed=1&" + query]
    subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    return np.asarray(Image.open(shot).convert("RGB"))


def two_time_check(page: Path, chromium: str, tmp: Path, data: Path, key: str | None, frames: int,
                   size: int) -> dict:
    """Screenshots at the first and middle frame against the ground truth's view-0 alpha at both (see above)."""
    from PIL import Image

    from reference_model.export.rig import _load_sample

    sample = _load_sample(data, key)
    times = (0, frames // 2)
    shots = [screenshot(page, chromium, tmp / f"shot{f}", f"frame={f}", size) for f in times]
    drawn = [(255 - s.astype(np.int32)).max(axis=-1) > 24 for s in shots]
    gts = [np.asarray(Image.fromarray(sample.frame(0, f)[..., 3]).resize((size, size), Image.BILINEAR)) >= 128
           for f in times]
    iou = [[float((d & g).sum() / max((d | g).sum(), 1)) for g in gts] for d in drawn]
    return {"frames": times, "mean_abs_diff": float(np.abs(shots[0].astype(np.int32) - shots[1]).mean()),
            "changed_px": int((np.abs(shots[0].astype(np.int32) - shots[1]).max(axis=-1) > 24).sum()),
            "iou": iou, "ok": bool(iou[0][0] > iou[0][1] and iou[1][1] > iou[1][0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[16384, 65536])
    parser.add_argument("--ply", type=Path, default=None, help="a real .ply sequence folder (or fit directory)")
    parser.add_argument("--max-gaussians", type=int, default=ViewerConfig().max_gaussians)
    parser.add_argument("--gt", type=Path, default=None, help="ground truth of --ply: the two-time screenshot check")
    parser.add_argument("--key", default=None, help="sample key in --gt (default: its first sample)")
    parser.add_argument("--keep", type=Path, default=None, help="write the --ply page here too (index.html)")
    parser.add_argument("--size", type=int, default=640, help="canvas and screenshot side (default 640)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("Chromium is not installed (bash scripts/ci_extras.sh)")
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [("synthetic", c) for c in args.counts if c > 0] + ([("ply", 0)] if args.ply else [])
        for kind, count in cases:
            seq = tmp / f"seq{count}"
            seq.mkdir()
            plys = synthetic(seq, count) if kind == "synthetic" else find_sequence(args.ply)
            t0 = time.perf_counter()
            where = args.keep.resolve() if kind == "ply" and args.keep else tmp / f"page{count}"
            video = find_video(args.ply) if kind == "ply" else None  # the orbit GIF, as `charactershot view`
            info = build_page(plys, where, ViewerConfig(max_gaussians=args.max_gaussians), video=video, size=args.size)
            build_s = time.perf_counter() - t0
            status, wall = chromium_load(info.path, chromium, tmp / f"profile{count}")
            assert status["ready"], status
            if kind == "ply" and args.gt is not None:
                checks.append(two_time_check(info.path, chromium, tmp, args.gt, args.key, info.num_frames, args.size))
            rows.append({"source": kind if kind == "ply" else f"synthetic {count}", "frames": info.num_frames,
                         "gaussians": info.num_gaussians, "page_MB": info.bytes / 1e6, "build_s": build_s,
                         "first_frame_ms": status["load_ms"], "navigation_ms": status["since_navigation_ms"],
                         "chromium_wall_s": wall})
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}), Chromium software WebGL2")
    print("| source | frames | Gaussians | page MB | build s | script start -> first frame ms "
          "| page request -> first frame ms | Chromium process wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['frames']} | {r['gaussians']:,} | {r['page_MB']:.1f} | {r['build_s']:.2f} | "
              f"{r['first_frame_ms']} | {r['navigation_ms']} | {r['chromium_wall_s']:.1f} |")

    for c in checks:
        (a, b) = c["frames"]
        print(f"two-time check (view 0, frames {a} and {b}): {c['changed_px']:,} pixels changed (mean |diff| "
              f"{c['mean_abs_diff']:.2f} of 255); drawn vs ground-truth alpha IoU: frame {a} shot {c['iou'][0][0]:.3f} "
              f"own / {c['iou'][0][1]:.3f} other, frame {b} shot {c['iou'][1][1]:.3f} own / {c['iou'][1][0]:.3f} "
              f"other: {'ok' if c['ok'] else 'FAILED'}")


if __name__ == "__main__":
    main()
