"""`charactershot view`: the splat page, read back by parsing and played in headless Chromium.

The fixtures write PLY files with their own small writer (numpy structured bytes), independent of the
reader under test; the rendered images are checked against the rig's pinhole projection
(`character4d.cameras.project`) and the analytic footprint of a Gaussian (sigma_px = f * sigma / depth).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from character4d.cameras import RigConfig, project, rig_cameras
from reference_model.cli import main as charactershot
from reference_model.export.plyio import PlyError, read_splats
from reference_model.export.viewer import ViewerConfig, build_page, find_sequence, pack_sequence, select_gaussians

SH_C0 = 0.28209479177387814
PROPS = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
         + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(path: Path, means, rgb, opacity, scales, quats=None, props=PROPS) -> Path:
    n = len(means)
    arr = np.zeros((n, len(PROPS)), np.float32)
    arr[:, 0:3] = means
    arr[:, 6:9] = (np.asarray(rgb, dtype=np.float64) - 0.5) / SH_C0
    arr[:, 54] = np.log(np.asarray(opacity) / (1 - np.asarray(opacity)))
    arr[:, 55:58] = np.log(scales)
    arr[:, 58:62] = [1, 0, 0, 0] if quats is None else quats
    cols = [PROPS.index(p) for p in props]
    head = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
            + "".join(f"property float {p}\n" for p in props) + "end_header\n")
    path.write_bytes(head.encode() + np.ascontiguousarray(arr[:, cols]).tobytes())
    return path


BLOB_X = (-0.3, 0.3)  # the red "hand" moves from the character's right to its left


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """A blue body (fixed) and a red blob that moves along +X between two frames."""
    out = tmp_path_factory.mktemp("seq")
    rng = np.random.default_rng(0)
    body = rng.normal(size=(1500, 3)) * [0.12, 0.08, 0.35] + [0, 0, 0.9]
    blob = rng.normal(size=(300, 3)) * 0.04
    rgb = np.concatenate([np.tile([0.2, 0.3, 0.9], (1500, 1)), np.tile([0.95, 0.1, 0.1], (300, 1))])
    for f, x in enumerate(BLOB_X):
        means = np.concatenate([body, blob + [x, -0.2, 1.2]])
        write_ply(out / f"frame{f}.ply", means, rgb, np.full(len(means), 0.8), np.full((len(means), 3), 0.02))
    (out / "orbit.gif").write_bytes(_tiny_gif())
    return out


def _tiny_gif() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(buf, format="GIF")
    return buf.getvalue()


def test_reader_names_missing_properties_and_bad_files(tmp_path):
    ok = write_ply(tmp_path / "a.ply", np.zeros((3, 3)), np.full((3, 3), 0.5), np.full(3, 0.5), np.ones((3, 3)))
    s = read_splats(ok)
    assert len(s) == 3 and np.allclose(s.quats, [1, 0, 0, 0]) and np.allclose(s.sh_dc, 0)
    short = write_ply(tmp_path / "b.ply", np.zeros((3, 3)), np.full((3, 3), 0.5), np.full(3, 0.5), np.ones((3, 3)),
                      props=[p for p in PROPS if p not in ("opacity", "rot_3")])
    with pytest.raises(PlyError, match="opacity, rot_3"):
        read_splats(short)
    (tmp_path / "c.ply").write_bytes(b"not a ply")
    with pytest.raises(PlyError, match="not a PLY"):
        read_splats(tmp_path / "c.ply")
    (tmp_path / "d.ply").write_bytes(ok.read_bytes()[:-10])
    with pytest.raises(PlyError, match="truncated"):
        read_splats(tmp_path / "d.ply")


def test_quantisation_keeps_positions_scales_and_colours(sequence):
    frames = [read_splats(p) for p in find_sequence(sequence)]
    keep = select_gaussians(frames[0], 10**9)
    meta, blob = pack_sequence(frames, keep)
    n, f = meta["num_gaussians"], meta["num_frames"]
    off, length = meta["segments"]["positions"]
    pos = np.frombuffer(blob, "<u2", count=f * n * 3, offset=off).reshape(f, n, 3)
    lo, hi = np.array(meta["bbox_min"]), np.array(meta["bbox_max"])
    decoded = lo + (hi - lo) * pos / 65535
    truth = np.stack([fr.means for fr in frames])
    assert np.abs(decoded - truth).max() <= (hi - lo).max() / 65535  # half a step each way, plus float32
    assert not meta["colors_per_frame"]  # colours do not change over time: stored once
    off, length = meta["segments"]["colors"]
    assert length == n * 4
    col = np.frombuffer(blob, np.uint8, count=length, offset=off).reshape(n, 4)
    assert np.abs(col[-1, :3] - np.array([0.95, 0.1, 0.1]) * 255).max() <= 1
    assert abs(int(col[0, 3]) - 204) <= 1  # opacity 0.8


def test_selection_keeps_the_most_visible():
    from reference_model.export.plyio import Splats

    opac = np.array([5.0, -5.0, 5.0, 0.0])  # logits
    s = Splats(np.zeros((4, 3)), np.zeros((4, 3)), opac, np.log(np.full((4, 3), 0.01)), np.tile([1.0, 0, 0, 0], (4, 1)))
    assert select_gaussians(s, 2).tolist() == [0, 2]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (bash scripts/ci_extras.sh)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile{np.random.randint(1 << 30)}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def _status(dom: str) -> dict:
    return json.loads(re.search(r'<pre id="status">([^<]*)</pre>', dom).group(1))


def _screenshot(page: Path, query: str, tmp_path: Path, size: int) -> np.ndarray:
    shot = tmp_path / f"shot{abs(hash(query))}.png"
    _chromium(tmp_path, f"--window-size={size},{size}", f"--screenshot={shot}", page.as_uri() + "?embed=1&" + query)
    return np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)


@needs_chromium
def test_page_plays_the_sequence_in_headless_chromium(sequence, tmp_path):
    size = 320
    assert charactershot(["view", str(sequence), "--out", str(tmp_path / "page"), "--size", str(size)]) == 0
    page = tmp_path / "page" / "index.html"
    status = _status(_chromium(tmp_path, "--dump-dom", page.as_uri() + "?frame=1").stdout)
    assert status["ready"] and status["webgl"] and status["frame"] == 1
    assert (status["num_frames"], status["num_gaussians"]) == (2, 1800)

    cams = rig_cameras(RigConfig(resolution=size))
    shots = [_screenshot(page, f"frame={f}", tmp_path, size) for f in range(2)]
    assert np.abs(shots[0] - shots[1]).max() > 100  # the character moved
    for shot, x in zip(shots, BLOB_X):
        red = (shot[..., 0] > 180) & (shot[..., 1] < 90) & (shot[..., 2] < 90)
        ys, xs = np.nonzero(red)
        (u, v), = project(np.array([[x, -0.2, 1.2]]), cams.viewmats[0], cams.Ks[0])[0]
        assert red.sum() > 100
        # where the rig's view-0 camera puts the blob's centre (pixel centres are at +0.5)
        assert abs(xs.mean() + 0.5 - u) < 2.5 and abs(ys.mean() + 0.5 - v) < 2.5, (xs.mean(), ys.mean(), u, v)
    # view from behind (azimuth 180): the blob at +X appears on the image's left half now
    back = _screenshot(page, "frame=1&az=180", tmp_path, size)
    red = (back[..., 0] > 180) & (back[..., 1] < 90) & (back[..., 2] < 90)
    assert red.sum() > 0 and np.nonzero(red)[1].mean() < size / 2


@needs_chromium
def test_footprint_of_one_gaussian_matches_the_projection(tmp_path):
    """An isotropic and a rotated anisotropic Gaussian: screen-space standard deviations f * sigma / depth."""
    seq = tmp_path / "one"
    seq.mkdir()
    half = np.sqrt(0.5)
    # Gaussian 0: isotropic sigma 0.04 at (-0.4, 0, 0.7); Gaussian 1: sigma (0.12, 0.02, 0.02) turned 90 deg
    # about the camera's optical axis (world Y), so it is long along world Z (image rows).
    write_ply(seq / "f0.ply", np.array([[-0.4, 0, 0.7], [0.4, 0, 0.7]]), np.zeros((2, 3)), np.full(2, 0.99),
              np.array([[0.04, 0.04, 0.04], [0.12, 0.02, 0.02]]),
              quats=np.array([[1, 0, 0, 0], [half, 0, half, 0]]))
    size = 400
    build_page(find_sequence(seq), tmp_path / "p", ViewerConfig(), size=size)
    shot = _screenshot(tmp_path / "p" / "index.html", "frame=0", tmp_path, size)
    ink = (255 - shot.mean(axis=2)) / 255.0
    f = size / 2 / np.tan(np.radians(39.5978 / 2))
    cams = rig_cameras(RigConfig(resolution=size))
    for centre, (sx, sy) in (([-0.4, 0, 0.7], (0.04, 0.04)), ([0.4, 0, 0.7], (0.02, 0.12))):
        (u, v), = project(np.array([centre]), cams.viewmats[0], cams.Ks[0])[0]
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        win = (np.abs(xs - u) < 60) & (np.abs(ys - v) < 60)
        w = np.where(win, ink, 0)
        # ink = 0.99 exp(-r^2 / 2 sigma^2) inside 3 sigma: the weighted variance is 0.9707 sigma^2 there
        for coord, c0, s in ((xs, u, sx), (ys, v, sy)):
            var = (w * (coord - c0) ** 2).sum() / w.sum()
            expected = (f * s / 3.5) ** 2 + 0.3
            assert abs(np.sqrt(var / 0.9707) / np.sqrt(expected) - 1) < 0.06, (np.sqrt(var), np.sqrt(expected))


@needs_chromium
def test_without_webgl_the_orbit_video_is_shown(sequence, tmp_path):
    info = build_page(find_sequence(sequence), tmp_path / "page", video=sequence / "orbit.gif")
    dom = _chromium(tmp_path, "--dump-dom", info.path.as_uri() + "?nowebgl=1").stdout
    status = _status(dom)
    assert (status["ready"], status["webgl"], status["reason"]) == (False, False, "WebGL2 is not available")
    assert re.search(r'<div id="fallback" style="display: block;">.*<img src="data:image/gif;base64,', dom, re.S)


def test_a_fit_directory_layout_is_found(tmp_path):
    fit = tmp_path / "fit"
    (fit / "ply").mkdir(parents=True)
    for f in (10, 2, 1):  # natural order: frame1, frame2, frame10
        write_ply(fit / "ply" / f"frame{f}.ply", np.zeros((2, 3)) + f, np.full((2, 3), 0.5), np.full(2, 0.5),
                  np.ones((2, 3)))
    (fit / "orbit.gif").write_bytes(_tiny_gif())
    from reference_model.export.viewer import find_video

    assert [p.name for p in find_sequence(fit)] == ["frame1.ply", "frame2.ply", "frame10.ply"]
    assert find_video(fit).name == "orbit.gif"


def test_cli_bad_input_exits_1(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert charactershot(["view", str(tmp_path / "empty"), "--out", str(tmp_path / "p")]) == 1
    assert "no .ply files" in capsys.readouterr().err
    a = write_ply(tmp_path / "mixed" / "a.ply" if (tmp_path / "mixed").mkdir() is None else None,
                  np.zeros((3, 3)), np.full((3, 3), 0.5), np.full(3, 0.5), np.ones((3, 3)))
    write_ply(a.with_name("b.ply"), np.zeros((4, 3)), np.full((4, 3), 0.5), np.full(4, 0.5), np.ones((4, 3)))
    assert charactershot(["view", str(tmp_path / "mixed"), "--out", str(tmp_path / "p")]) == 1
    assert "b.ply: 4 Gaussians, but a.ply has 3" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_export_modules_load_no_bpy_or_torch_at_import():
    import subprocess
    import sys

    code = ("import sys; import reference_model.export.viewer, reference_model.export.rig, reference_model.export.mesh, "
            "reference_model.export.ik, reference_model.export.blender_rig, reference_model.export.blender_gt; "
            "print(sorted(m for m in ('bpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"
