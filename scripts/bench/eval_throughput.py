"""Throughput of a full `characterbench eval` (N samples x 81 cells, every metric with weights).

Builds a synthetic ground truth of N samples (21 views x 25 frames at 512 px, moving coloured shapes on a
transparent background, PNG-compressed like renders) and the static-A-pose baseline from it (written by the
baseline's own `write_baseline_sample`, on all cores), then times
`characterbench.evaluate.evaluate` end to end (decode, resize, SSIM/PSNR/LPIPS, I3D for the four FVD
variants, statistics). Only `U` samples are encoded; the others reuse their files under new keys, which
costs the evaluation exactly as much as distinct samples would.

    python scripts/bench/eval_throughput.py --samples 100 --device cuda
    python scripts/bench/eval_throughput.py --samples 4 --device cpu --work /tmp/evalbench

CLIP-S is left out unless --clip-random is given: its weights ship in no registry; with --clip-random a
randomly initialised CLIP ViT-B/32 of the real size is timed (its values mean nothing and are not shown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from character4d.cameras import RigConfig, rig_cameras
from character4d.format import Sample, ShardWriter, apose_name, build_sample, frame_name, sample_key

VIEWS, FRAMES = 21, 25


def _image(size: int, v: int, f: int | None, seed: int) -> np.ndarray:
    """An RGBA 'character': two shaded ellipses that move with the frame and turn with the view."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.9, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = 0.0 if f is None else f / FRAMES
    cx = 0.5 + 0.08 * np.sin(2 * np.pi * (t + v / VIEWS))
    body = ((xx - cx) / 0.12) ** 2 + ((yy - 0.55) / 0.3) ** 2 < 1
    head = ((xx - cx) / 0.07) ** 2 + ((yy - 0.2 + 0.02 * np.cos(2 * np.pi * t)) / 0.08) ** 2 < 1
    alpha = body | head
    shade = 0.6 + 0.4 * (1 - yy)
    rgb = (base[None, None] * shade[..., None] * 255).astype(np.uint8)
    rgb[head] = (255 * base[::-1]).astype(np.uint8)
    return np.dstack([rgb, (alpha * 255).astype(np.uint8)])


def _make_sample(args: tuple[int, int]) -> dict[str, bytes]:
    index, size = args
    key = sample_key(f"char{index:03d}", "synthetic")
    cams = rig_cameras(RigConfig(resolution=size))
    black = np.zeros((size, size, 3), np.uint8)
    sample = build_sample(
        key,
        {"fps": 15.0, "joint_names": ["hips"], "source_times": [f / 15 for f in range(FRAMES)]},
        cams.to_json(),
        np.zeros((FRAMES, 1, 3), np.float32),
        np.zeros((1, 3), np.float32),
        [_image(size, v, None, index) for v in range(VIEWS)],
        [[_image(size, v, f, index) for f in range(FRAMES)] for v in range(VIEWS)],
        [[black] * FRAMES for _ in range(VIEWS)],
    )
    return dict(sample.files)


def _write_shard(args: tuple[Path, Path, list[int], dict[int, dict[str, bytes]], int]) -> None:
    """One shard of re-keyed samples, and their static-A-pose predictions (by the baseline's own code)."""
    from characterbench.baselines import get_baseline, write_baseline_sample
    from characterbench.protocol import PROTOCOL_V1

    path, pred, indices, distinct, unique = args
    baseline = get_baseline("static-apose")
    with ShardWriter(str(path)) as writer:
        for i in indices:
            files = dict(distinct[i % unique])
            meta = json.loads(files["meta.json"])
            meta["character_id"] = f"char{i:03d}"
            files["meta.json"] = json.dumps(meta).encode()
            sample = Sample.from_files(sample_key(f"char{i:03d}", "synthetic"), files, validate=False)
            writer.write(sample)
            write_baseline_sample(sample, baseline, pred, PROTOCOL_V1)


def build_data(root: Path, samples: int, unique: int, size: int, workers: int) -> tuple[Path, Path]:
    """Write N samples into shards under ``root/gt`` (U distinct, the rest re-keyed copies) and the
    static-A-pose predictions under ``root/pred``, both on ``workers`` processes."""
    gt, pred = root / "gt", root / "pred"
    if (gt / "done").exists() and pred.exists():
        return gt, pred
    shutil.rmtree(gt, ignore_errors=True)
    shutil.rmtree(pred, ignore_errors=True)
    gt.mkdir(parents=True)
    tmp = root / "pred.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with ProcessPoolExecutor(workers) as pool:
        distinct = list(pool.map(_make_sample, [(i, size) for i in range(unique)]))
        per_tar = -(-samples // workers)
        jobs = []
        for k, start in enumerate(range(0, samples, per_tar)):
            indices = list(range(start, min(start + per_tar, samples)))
            needed = {i % unique: distinct[i % unique] for i in indices}
            jobs.append((gt / f"gt-{k:04d}.tar", tmp, indices, needed, unique))
        list(pool.map(_write_shard, jobs))
    tmp.rename(pred)
    (gt / "done").write_text("ok")
    return gt, pred


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--unique", type=int, default=10)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=27)
    p.add_argument("--workers", type=int, default=8, help="decode threads of the evaluation")
    p.add_argument("--work", type=Path, default=Path("/tmp/characterbench-evalbench"))
    p.add_argument("--bootstrap", type=int, default=1000, help="FVD bootstrap resamples (the eval default: 1000)")
    p.add_argument("--metrics", default="ssim,psnr,lpips,fvd_f,fvd_v,fvd_d,fv4d",
                   help="comma-separated (default: every multiview metric with fetchable weights)")
    p.add_argument("--clip-random", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    a = p.parse_args()

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_stages import Stages, instrument, load_average, print_table, timed_evaluate

    from characterbench.config import EvalConfig
    from characterbench.evaluate import evaluate

    t0 = time.perf_counter()
    gt, pred = build_data(a.work, a.samples, min(a.unique, a.samples), a.resolution, os.cpu_count() or 2)
    prep = time.perf_counter() - t0
    print(f"synthetic data ({a.samples} samples, {a.resolution} px): {prep:.1f} s", flush=True)
    metrics = tuple(a.metrics.split(","))
    if a.clip_random:
        os.environ["CHARACTERBENCH_CLIP"] = str(_random_clip(a.work))
        metrics += ("clip_s",)
    cfg = EvalConfig(pred=str(pred), gt=str(gt), metrics=metrics, device=a.device, batch_size=a.batch_size,
                     workers=a.workers, bootstrap=a.bootstrap)
    evaluate(cfg, progress=False) if a.samples <= 4 else None  # warm-up (kernels, weights) on small runs only
    stages = Stages()
    instrument(stages)
    results, run = timed_evaluate(cfg, stages)
    wall = run["wall_s"]
    timing = dict(results.timing)
    row = {"device": results.device, "samples": results.sample_count, "wall_s": wall,
           "s_per_sample": wall / results.sample_count, "i3d_clips_per_s": timing.get("feature_clips_per_s"),
           "i3d_clips": timing.get("feature_clips"), "bootstrap_s": timing.get("bootstrap_s"),
           "bootstrap": a.bootstrap, "prep_s": prep, "cpu_s": run["user_s"] + run["sys_s"],
           "load_before": run["load_before"], "load_after": load_average(),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "stages": dict(stages.seconds)}
    print_table(stages, results, run, f"characterbench eval throughput ({', '.join(metrics)}), "
                f"{results.sample_count} samples, {a.resolution} px ground truth, bootstrap {a.bootstrap}")
    print(f"\n  wall {wall:.2f} s, {wall / results.sample_count:.3f} s per sample, synthetic data {prep:.1f} s")
    if not a.clip_random:
        print("  metric values (static-A-pose baseline on synthetic data):",
              {k: round(v, 4) for k, v in results.metrics.items()})
    if a.json:
        a.json.write_text(json.dumps(row, indent=1))


def _random_clip(work: Path) -> Path:
    """A randomly initialised CLIP ViT-B/32 (real size) saved where load_clip can find it."""
    from transformers import CLIPConfig, CLIPModel

    path = work / "clip-random-vit-b32"
    if not path.exists():
        CLIPModel(CLIPConfig()).save_pretrained(path)
    return path


if __name__ == "__main__":
    main()
