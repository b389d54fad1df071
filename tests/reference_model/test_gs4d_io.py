""".ply files in the standard 3DGS layout, packs, downsampling, and `charactershot fit4d` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from reference_model.gs4d.data import downsample, load_views, write_pack
from reference_model.gs4d.gaussians import Gaussians, read_ply, write_ply

# graphdeco-inria/gaussian-splatting GaussianModel.construct_list_of_attributes() for SH degree 3, written out.
STANDARD_3DGS_DEGREE3 = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{i}" for i in range(45)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def _gaussians(n=7, degree=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=torch.rand(n, 3, generator=gen) * 0.1 + 0.01,
        opacities=torch.rand(n, generator=gen) * 0.9 + 0.05,
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=gen),
    )


def test_ply_has_the_standard_3dgs_layout_and_round_trips(tmp_path):
    g = _gaussians()
    path = write_ply(tmp_path / "g.ply", g)
    blob = path.read_bytes()
    header, body = blob.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 7"]
    names = [line.split()[2] for line in lines if line.startswith("property")]
    assert names == STANDARD_3DGS_DEGREE3
    assert all(line.startswith("property float ") for line in lines if line.startswith("property"))
    # Independent decode with a numpy structured dtype: logit opacities, log scales, channel-major f_rest.
    table = np.frombuffer(body, dtype=np.dtype([(n, "<f4") for n in names]))
    np.testing.assert_allclose(table["x"], g.means[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-table["opacity"])), g.opacities.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.exp(table["scale_1"]), g.scales[:, 1].numpy(), rtol=1e-5)
    np.testing.assert_allclose(table["f_rest_0"], g.sh[:, 1, 0].numpy(), rtol=1e-6)  # red, first rest coefficient
    np.testing.assert_allclose(table["f_rest_15"], g.sh[:, 1, 1].numpy(), rtol=1e-6)  # green starts at 15
    np.testing.assert_allclose(table["rot_0"], g.quats[:, 0].numpy(), rtol=1e-6)
    back = read_ply(path)
    for name in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), rtol=1e-5, atol=1e-6)


def test_ply_degree_zero_and_bad_files(tmp_path):
    g = _gaussians(degree=0)
    assert read_ply(write_ply(tmp_path / "d0.ply", g)).sh.shape == (7, 1, 3)
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a .ply"):
        read_ply(tmp_path / "bad.ply")


def test_pack_round_trip_and_downsampling(gs4d_sample, tmp_path):
    pack = write_pack(gs4d_sample, tmp_path / "s.npz", {1: None, 0: [0, 2]})
    a = load_views(pack, [1], [0, 1, 2])
    b = load_views(gs4d_sample, [1], [0, 1, 2])
    alpha = b.images[..., 3:4]
    np.testing.assert_array_equal(a.images[..., 3], b.images[..., 3])
    np.testing.assert_array_equal(np.where(alpha > 0, a.images[..., :3], 0), np.where(alpha > 0, b.images[..., :3], 0))
    np.testing.assert_array_equal(a.Ks, b.Ks)
    with pytest.raises(ValueError, match="lacks"):
        load_views(pack, [0], [1])
    half = load_views(gs4d_sample, [1], [0], resolution=16)
    np.testing.assert_allclose(half.Ks[0], b.Ks[0] * np.array([[0.5], [0.5], [1.0]]))
    # Box downsampling of premultiplied colour: a 2x2 block of one opaque red and three transparent pixels.
    block = np.zeros((2, 2, 4), dtype=np.uint8)
    block[0, 0] = (200, 0, 0, 255)
    np.testing.assert_array_equal(downsample(block, 2)[0, 0], [200, 0, 0, 64])
    with pytest.raises(ValueError, match="divisor"):
        load_views(gs4d_sample, [1], [0], resolution=20)


def test_fit4d_end_to_end_on_cpu(gs4d_sample, tmp_path, capsys):
    from character4d.format import write_folder_sample
    from reference_model.cli import main
    from reference_model.gs4d import load_fit, render

    root = tmp_path / "data"
    write_folder_sample(gs4d_sample, root)
    out = tmp_path / "fit"
    sets = ["init_points=150", "hull_resolution=24", "coarse_steps=3", "window_steps=2", "final_steps=3",
            "views_per_step=2", "sh_degree=1", "densify_from=1", "densify_every=2", "max_gaussians=200"]
    args = ["fit4d", "--data", str(root), "--out", str(out), "--device", "cpu", "--resolution", "16", "--quiet"]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0
    record = json.loads((out / "fit.json").read_text())
    assert record["sample"] == gs4d_sample.key and record["split"]["eval_views"] == [0, 2, 5, 7, 9, 12, 14, 16, 19]
    assert set(record["split"]["train_views"]).isdisjoint(record["split"]["eval_views"])
    assert record["iterations"]["total"] == 8 and record["wall_seconds"]["fit"] > 0
    assert set(record["metrics"]) == {"heldout", "train", "initial_heldout"}
    pngs = sorted((out / "pred" / gs4d_sample.key).glob("view*/frame*.png"))
    assert len(pngs) == 9 * 3 and Image.open(pngs[0]).size == (16, 16)
    assert len(list((out / "ply").glob("frame*.ply"))) == 3
    assert (out / "orbit.gif").stat().st_size > 0
    model, config = load_fit(out)
    assert config.init_points == 150 and model.num_frames == 3
    # The saved renders are what the reloaded model renders.
    evals = load_views(root, [0], [2], resolution=16)
    r = render(model, 1.0, torch.from_numpy(evals.viewmats), torch.from_numpy(evals.Ks), 16, 16)
    saved = np.array(Image.open(out / "pred" / gs4d_sample.key / "view00" / "frame002.png")).astype(np.float32) / 255
    assert np.abs(r.colors[0].numpy() - saved).max() <= 1 / 255 + 1e-6
    # Bad input: an unknown sample is exit 1, an unknown field exit 2; nothing is written for them.
    assert main(["fit4d", "--data", str(root), "--sample", "nobody__here", "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert main(["fit4d", "--data", str(root), "--out", str(tmp_path / "y"), "--set", "final_step=3"]) == 2
    err = capsys.readouterr().err
    assert "nobody__here" in err and "final_steps" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
