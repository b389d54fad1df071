"""End-to-end ``characterbench eval`` on tiny data: the ceiling, degraded predictions, FVD plumbing,
per-cell values against scikit-image, malformed folders, and the real weights when fetched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from characterbench.cli import main
from characterbench.evaluate import SetStatistic
from characterbench.groundtruth import index_ground_truth
from characterbench.protocol import PROTOCOL_V1
from characterbench.results import load_results
from tests.characterbench.conftest import KEYS, OVERRIDE, SIZE, SMALL, require_weights


def run_eval(pred, gt, out, *extra: str, task: str = "multiview"):
    """Run the CLI in-process and load its record."""
    rc = main(["eval", "--pred", str(pred), "--gt", str(gt), "--task", task, "--out", str(out), "--quiet", *OVERRIDE, *extra])
    assert rc == 0
    return load_results(out)


def test_ground_truth_is_the_ceiling(baselines, gt_shard, tmp_path, capsys):
    r = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "r.json", "--metrics", "ssim,psnr", "--label", "gt")
    assert r.metrics["ssim"] == pytest.approx(1.0, abs=1e-12)
    # Identical images: PSNR is infinite; the protocol caps it per image (psnr_cap_db).
    assert r.metrics["psnr"] == PROTOCOL_V1.psnr_cap_db == 100.0
    assert r.sample_count == 2 and [s.key for s in r.per_sample] == list(KEYS)
    assert r.protocol_version == "characterbench-v1+custom" and r.protocol_fingerprint == SMALL.fingerprint()
    assert r.gt_manifest_hash == index_ground_truth(gt_shard, SMALL).manifest_hash
    assert np.asarray(r.grid.values["ssim"]).shape == (9, 9) and r.grid.row_labels == list(PROTOCOL_V1.views)
    assert r.weights == {} and r.intervals == {} and r.label == "gt"
    assert r.package_version == "0.1.0" and r.date.endswith("+00:00") and r.device.startswith("cpu")
    assert r.git_commit is None or len(r.git_commit.split("+")[0]) == 40
    out = capsys.readouterr().out
    assert "ssim" in out and "results written to" in out


def _composited(rgba: np.ndarray) -> np.ndarray:
    """Independent numpy compositing on white (float64)."""
    x = rgba.astype(np.float64) / 255.0
    if x.shape[2] == 3:
        return x
    return x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])


def test_degraded_predictions_score_worse_and_match_scikit_image(baselines, degraded_pred, gt_shard, tmp_path):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from character4d.format import open_samples

    r = run_eval(degraded_pred, gt_shard, tmp_path / "r.json", "--metrics", "ssim,psnr", "--batch-size", "10")
    assert r.metrics["ssim"] < 0.9 and r.metrics["psnr"] < 30
    fv = run_eval(baselines["front-view"], gt_shard, tmp_path / "fv.json", "--metrics", "ssim,psnr", "--workers", "0")
    assert fv.metrics["ssim"] < 1.0
    # Headline = mean over samples of per-sample means = mean over cells of the grid.
    assert r.metrics["ssim"] == pytest.approx(np.mean([s.metrics["ssim"] for s in r.per_sample]))
    assert r.metrics["ssim"] == pytest.approx(np.mean(r.grid.values["ssim"]))
    # One cell against scikit-image, from the files (at 32 px the protocol resizes nothing).
    sample = list(open_samples(gt_shard))[1]
    i, j = 3, 5
    v, f = PROTOCOL_V1.views[i], PROTOCOL_V1.frames[j]
    gt = _composited(sample.frame(v, f))
    pred = _composited(np.asarray(Image.open(degraded_pred / sample.key / f"view{v:02d}" / f"frame{f:03d}.png")))
    expected_ssim = structural_similarity(
        pred, gt, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    cell = r.per_sample[1].grid
    assert cell["ssim"][i][j] == pytest.approx(expected_ssim, abs=1e-6)
    assert cell["psnr"][i][j] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0), abs=1e-4)


def test_fvd_pipeline_with_a_stand_in_extractor(stand_in_i3d, baselines, degraded_pred, gt_shard, tmp_path):
    fvd = "fvd_f,fvd_v,fvd_d,fv4d"
    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", fvd, "--bootstrap", "5")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", fvd, "--bootstrap", "5")
    assert same.clip_counts == {"fvd_f": 18, "fvd_v": 18, "fvd_d": 2, "fv4d": 2}
    for m in fvd.split(","):
        assert abs(same.metrics[m]) < 1e-6
        assert worse.metrics[m] > 1e-3
        iv = worse.intervals[m]
        assert iv.resamples == 5 and iv.unit == "sample" and iv.low <= iv.high
    assert same.weights == {"i3d_kinetics400": "stand-in"}
    assert worse.timing["feature_clips"] == 2 * (9 + 9 + 1 + 1) * 2
    assert worse.timing["bootstrap_s"] > 0 and worse.timing["total_s"] >= worse.timing["scoring_s"] + worse.timing["bootstrap_s"]
    assert all(iv.method == "basic" and iv.std >= 0 for iv in worse.intervals.values())


def _frechet_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of two feature sets in the textbook symmetric form, written apart from
    ``metrics.frechet``: tr sqrt(S1 C2 S1) with S1 = C1^(1/2), both from eigendecompositions."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root_a @ cov_b @ root_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def _stand_in_features_numpy(clip: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """:class:`StandInI3D` in numpy: ``clip`` ``[T, H, W, 3]`` in [-1, 1] (H, W multiples of 4) -> ``[400]``."""
    t, h, w, _ = clip.shape
    pooled = clip.reshape(t, 4, h // 4, 4, w // 4, 3).mean(axis=(2, 4)).transpose(0, 3, 1, 2).reshape(t, 48)
    motion = np.abs(np.diff(pooled, axis=0)).mean(axis=0)
    return np.concatenate([pooled.mean(axis=0), motion]) @ proj


def test_fvd_pools_clips_over_the_test_set(stand_in_i3d, baselines, gt_shard, tmp_path):
    """FVD-D and FVD-F from the pipeline equal the textbook Frechet distance of clip features computed
    apart from it: numpy compositing from the files, clips picked from the protocol's views and frames,
    the stand-in extractor in numpy, the distance from eigendecompositions. I3D frames stay at the
    images' 32 px (the stand-in accepts any size), so no resize enters."""
    from character4d.format import open_samples
    from tests.characterbench.conftest import StandInI3D

    pred = baselines["front-view"]
    r = run_eval(pred, gt_shard, tmp_path / "r.json", "--metrics", "fvd_f,fvd_d", "--bootstrap", "0",
                 "--override", f"fvd_resolution={SIZE}")
    proj = StandInI3D().proj.double().numpy()
    views, frames = PROTOCOL_V1.views, PROTOCOL_V1.frames
    clips = {"fvd_d": [[(views[k], frames[k]) for k in range(9)]],
             "fvd_f": [[(v, f) for f in frames] for v in views]}
    for variant, variant_clips in clips.items():
        real, fake = [], []
        for sample in open_samples(gt_shard):
            for cells in variant_clips:
                gt = np.stack([_composited(sample.frame(v, f)) for v, f in cells]) * 2 - 1
                pr = np.stack([_composited(np.asarray(Image.open(pred / sample.key / f"view{v:02d}" / f"frame{f:03d}.png")))
                               for v, f in cells]) * 2 - 1
                real.append(_stand_in_features_numpy(gt, proj))
                fake.append(_stand_in_features_numpy(pr, proj))
        assert len(real) == r.clip_counts[variant]
        expected = _frechet_numpy(np.stack(real), np.stack(fake))
        assert expected > 1e-3  # the front view everywhere is not the ground truth
        # float32 images and features in the pipeline against float64 here: agreement to ~6e-7.
        assert r.metrics[variant] == pytest.approx(expected, rel=1e-5), variant


def test_set_statistic_bootstrap_is_paired_over_samples():
    stat = SetStatistic(keep_per_sample=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        x = torch.from_numpy(rng.normal(size=(3, 4)))
        stat.update(f"s{i}", x, x + 1.0)  # a constant shift: every resample gives |shift|^2 = 4
    assert stat.compute() == pytest.approx(4.0)
    iv = stat.interval(resamples=30, confidence=0.9, seed=1)
    assert iv.low == pytest.approx(4.0) and iv.high == pytest.approx(4.0)
    assert iv.method == "basic" and iv.std == pytest.approx(0.0, abs=1e-9)


def _bias_stat(seed: int = 0) -> SetStatistic:
    """20 samples x 9 clips of D=400 features (N < D): the plug-in distance is far above the true 8."""
    rng = np.random.default_rng(seed)
    stat = SetStatistic(keep_per_sample=True)
    for i in range(20):
        stat.update(f"s{i:02d}", torch.from_numpy(rng.normal(size=(9, 400))), torch.from_numpy(rng.normal(size=(9, 400)) * 1.1 + 0.1))
    return stat


def test_set_statistic_basic_interval_reflects_the_replicates():
    from metrics.fvd import frechet_distance

    stat = _bias_stat()
    value = stat.compute()
    iv = stat.interval(resamples=20, confidence=0.9, seed=3)
    # Independent replicates: concatenate the drawn samples and call the plain numpy distance.
    rng = np.random.default_rng(3)
    reps = []
    for _ in range(20):
        idx = rng.integers(0, 20, 20)
        reps.append(frechet_distance(np.concatenate([stat.samples[i][1] for i in idx]),
                                     np.concatenate([stat.samples[i][2] for i in idx])))
    q_lo, q_hi = np.quantile(reps, [0.05, 0.95])
    assert (iv.low, iv.high) == pytest.approx((2 * value - q_hi, 2 * value - q_lo), rel=1e-9)
    assert iv.std == pytest.approx(np.std(reps, ddof=1), rel=1e-9) and iv.method == "basic"
    # Resampling inflates the biased distance: the old percentile interval lay wholly above the
    # point value; the basic one is its reflection, on the side where the true distance (8) lies.
    # (Neither contains the value here: both do exactly when q_lo <= value <= q_hi.)
    assert value < q_lo and iv.high < value and iv.low > 8.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_set_statistic_interval_on_gpu_equals_cpu():
    stat = _bias_stat(1)
    cpu = stat.interval(resamples=40, confidence=0.95, seed=0)
    gpu = stat.interval(resamples=40, confidence=0.95, seed=0, device="cuda")
    for field in ("low", "high", "std"):
        assert getattr(gpu, field) == pytest.approx(getattr(cpu, field), rel=1e-9), field


def test_clip_score_with_a_tiny_clip(tiny_clip_dir, monkeypatch, baselines, degraded_pred, gt_shard, tmp_path):
    monkeypatch.setenv("CHARACTERBENCH_CLIP", str(tiny_clip_dir))
    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", "clip_s")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", "clip_s")
    assert same.metrics["clip_s"] == pytest.approx(1.0, abs=1e-5)
    assert worse.metrics["clip_s"] < same.metrics["clip_s"] - 1e-4
    assert len(same.weights["clip"]) == 64


class ScriptedInception(torch.nn.Module):
    """The call convention of the clean-fid TorchScript Inception (uint8 in, ``return_features``)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 2).flatten(1)  # [N, 12]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_apose_task_with_fid_stand_in(monkeypatch, baselines, degraded_pred, gt_shard, tmp_path):
    path = tmp_path / "inception.pt"
    torch.jit.script(ScriptedInception()).save(str(path))
    monkeypatch.setenv("CHARACTERBENCH_INCEPTION", str(path))
    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", "fid,psnr,ssim", "--bootstrap", "10", task="apose")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", "fid,psnr,ssim", "--bootstrap", "10", task="apose")
    assert abs(same.metrics["fid"]) < 1e-9 and same.metrics["ssim"] == pytest.approx(1.0)
    assert worse.metrics["fid"] > 1e-6 and worse.metrics["ssim"] < 0.9
    assert same.clip_counts == {"fid": 42} and np.asarray(same.grid.values["psnr"]).shape == (21, 1)
    assert same.grid.col_axis == "apose" and "fid_inception" in same.weights


def test_malformed_folder_fails_before_any_metric(gt_pred, gt_shard, tmp_path, capsys):
    (gt_pred / KEYS[0] / "view00" / "frame000.png").unlink()
    (gt_pred / KEYS[1] / "view19" / "frame024.png").write_bytes(b"not a png")
    out = tmp_path / "r.json"
    assert main(["eval", "--pred", str(gt_pred), "--gt", str(gt_shard), "--out", str(out), "--quiet", "--metrics", "ssim"]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and f"{KEYS[0]}/view00/frame000.png" in err and f"{KEYS[1]}/view19/frame024.png" in err
    assert not out.exists()


def test_usage_errors(baselines, gt_shard, tmp_path, capsys, monkeypatch):
    args = ["eval", "--pred", str(baselines["ground-truth"]), "--gt", str(gt_shard), "--out", str(tmp_path / "r.json"), "--quiet"]
    assert main(args + ["--metrics", "ssmi"]) == 2  # a usage error (character4d.errors policy)
    assert "did you mean 'ssim'" in capsys.readouterr().err
    # Set-level metrics pool over samples: one sample is refused, with the reason.
    from character4d.format import open_samples

    one = tmp_path / "one.tar"
    from character4d.format import ShardWriter

    with ShardWriter(one) as w:
        w.write(next(iter(open_samples(gt_shard))))
    pred_one = tmp_path / "pred_one"
    pred_one.mkdir()
    (pred_one / KEYS[0]).symlink_to(baselines["ground-truth"] / KEYS[0], target_is_directory=True)
    assert main(["eval", "--pred", str(pred_one), "--gt", str(one), "--out", str(tmp_path / "x.json"), "--quiet", "--metrics", "ssim,fvd_d"]) == 1
    assert "need at least 2, got 1" in capsys.readouterr().err
    # Missing weights: the message says how to get them.
    monkeypatch.setenv("CHARACTERBENCH_HOME", str(tmp_path / "empty-home"))
    assert main(args + ["--metrics", "lpips"]) == 1
    assert "characterbench weights fetch" in capsys.readouterr().err


@pytest.mark.weights
def test_lpips_with_published_weights(baselines, degraded_pred, gt_shard, tmp_path):
    require_weights("lpips_alex")
    from metrics.weights import weights_status

    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", "lpips")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", "lpips")
    assert same.metrics["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert worse.metrics["lpips"] > 0.01
    assert same.weights == {"lpips_alex": weights_status(names=["lpips_alex"])["lpips_alex"].sha256}


@pytest.mark.weights
def test_fvd_d_with_published_i3d(baselines, degraded_pred, gt_shard, tmp_path):
    require_weights("i3d_kinetics400")
    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", "fvd_d", "--bootstrap", "0")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", "fvd_d", "--bootstrap", "0")
    assert abs(same.metrics["fvd_d"]) < 1e-6  # 2 clips in 400-d: a rank-1 covariance, exactly 0
    assert worse.metrics["fvd_d"] > 1.0
    assert same.weights["i3d_kinetics400"] and same.timing["feature_clips"] == 4


@pytest.mark.weights
@pytest.mark.slow
def test_every_metric_with_published_weights(baselines, degraded_pred, gt_shard, tmp_path):
    """The full multiview task (CLIP-S aside: no registry ships CLIP): ceiling and degradation."""
    require_weights("lpips_alex", "i3d_kinetics400")
    metrics = "ssim,psnr,lpips,fvd_f,fvd_v,fvd_d,fv4d"
    same = run_eval(baselines["ground-truth"], gt_shard, tmp_path / "a.json", "--metrics", metrics, "--bootstrap", "10")
    worse = run_eval(degraded_pred, gt_shard, tmp_path / "b.json", "--metrics", metrics, "--bootstrap", "10")
    assert same.metrics["ssim"] == pytest.approx(1.0) and same.metrics["lpips"] == pytest.approx(0.0, abs=1e-7)
    for m in ("fvd_f", "fvd_v", "fvd_d", "fv4d"):
        assert abs(same.metrics[m]) < 1e-6, m
        assert worse.metrics[m] > 1.0, m
    assert worse.metrics["ssim"] < same.metrics["ssim"] and worse.metrics["psnr"] < same.metrics["psnr"]
    assert worse.metrics["lpips"] > same.metrics["lpips"]
    json.loads((tmp_path / "b.json").read_text())  # plain JSON, no NaN/Infinity


def test_each_prediction_png_is_decoded_once(baselines, gt_shard, tmp_path, monkeypatch):
    """Scoring takes the images validation decoded; with no room to keep them it decodes them again,
    with the same numbers."""
    import characterbench.evaluate as E
    import characterbench.predictions as predictions

    decodes = []
    original = predictions.read_prediction
    monkeypatch.setattr(predictions, "read_prediction", lambda path: decodes.append(path) or original(path))
    pred = baselines["front-view"]
    kept = run_eval(pred, gt_shard, tmp_path / "a.json", "--metrics", "ssim,psnr")
    assert decodes == []
    monkeypatch.setattr(E, "default_keep_bytes", lambda: 0)
    again = run_eval(pred, gt_shard, tmp_path / "b.json", "--metrics", "ssim,psnr")
    assert len(decodes) == 2 * 81
    assert again.metrics == kept.metrics and again.per_sample[1].grid == kept.per_sample[1].grid
