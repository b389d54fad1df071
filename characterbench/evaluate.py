"""``characterbench eval``: score a prediction folder against the ground truth under a protocol.

The evaluation reads the ground truth twice and streams it: the first pass indexes it (keys, sizes,
manifest hash) so that the prediction folder is validated before any metric runs; the second pass
scores one sample at a time, so memory holds one sample's images, never the test set. Per-image
metrics keep one number per cell; FVD and FID keep float64 running sums of their features
(``metrics.fvd``), plus each sample's features (20 x 400 per side for FVD) for the bootstrap
interval, which resamples samples, not clips, because a sample's clips are not independent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import characterbench
from characterbench import protocol as P
from characterbench.config import EvalConfig
from characterbench.groundtruth import GroundTruthError, GroundTruthIndex, index_ground_truth, iter_ground_truth
from characterbench.predictions import PredictionIndex, read_prediction, validate_predictions
from characterbench.protocol import Protocol
from characterbench.results import Grid, Interval, Results, SampleScores
from characterbench.scorers import MetricSuite, build_suite, describe_device, resolve_device
from characterbench.tasks import METRICS, resolve_metrics


# --------------------------------------------------------------------------- set-level metrics


class SetStatistic:
    """Pooled Frechet statistics of one set-level metric (an FVD variant or FID).

    The point estimate comes from float64 running sums (``metrics.frechet.FrechetMetric``: sum, sum of
    outer products, count per side; reducible across processes). Each sample's features are kept
    too when ``keep_per_sample`` (for FVD 20 x 400 per side and sample), for the bootstrap, which
    resamples samples with their clips, paired between prediction and ground truth.

    Args:
        keep_per_sample: Keep per-sample features for :meth:`interval`.
    """

    def __init__(self, keep_per_sample: bool):
        self.sums: Any = None  # built on the first update, when the feature size D is known
        self.keep = keep_per_sample
        self.samples: list[tuple[str, np.ndarray, np.ndarray]] = []

    @property
    def count(self) -> int:
        """Feature vectors pooled per side."""
        return 0 if self.sums is None else int(self.sums.real_count)

    def update(self, key: str, real: torch.Tensor, fake: torch.Tensor) -> None:
        """Add one sample's features, ``[n, D]`` float64 each (same ``n``)."""
        if self.sums is None:
            from metrics.frechet import FrechetMetric

            class _Features(FrechetMetric):
                def extract(self, inputs: torch.Tensor, name: str) -> torch.Tensor:
                    return inputs

            self.sums = _Features(real.shape[1])
        self.sums.update(preds=fake, target=real)
        if self.keep:
            self.samples.append((key, real.double().numpy(), fake.double().numpy()))

    def compute(self) -> float:
        """Frechet distance of the pooled statistics (covariance with N - 1).

        Raises:
            ValueError: Fewer than 2 feature vectors per side.
        """
        if self.count < 2:
            raise ValueError(f"a Frechet distance needs at least 2 feature vectors per side, got {self.count}")
        return float(self.sums.compute())

    def interval(self, resamples: int, confidence: float, seed: int, device: torch.device | str = "cpu") -> Interval:
        """Basic (reverse-percentile) bootstrap interval resampling samples (all their clips, paired
        between prediction and ground truth), drawn over the samples sorted by key
        (:func:`metrics.frechet.bootstrap_frechet_distance` with ``unit="samples"``, ``method="basic"``).

        The plug-in distance is biased upwards and resamples with duplicated samples inflate it
        further, so the replicates sit above the point value; the basic interval reflects them about
        it. When the shift exceeds the spread (few clips for D = 400) the interval lies below the
        point value, a sign that the point value itself is biased upwards.

        Args:
            resamples: Bootstrap replicates (>= 1).
            confidence: Nominal coverage in (0, 1).
            seed: Seed of the resampling.
            device: Where the replicates are computed (the evaluation device).

        Returns:
            The :class:`Interval` (with the replicates' standard deviation).

        Raises:
            ValueError: No per-sample features kept, or fewer than 2 samples.
        """
        from metrics.frechet import bootstrap_frechet_distance

        n = len(self.samples)
        if n < 2:
            raise ValueError(f"a bootstrap interval needs per-sample features of at least 2 samples, got {n}")
        keys = [k for k, _, _ in self.samples]
        real = np.concatenate([r for _, r, _ in self.samples])
        fake = np.concatenate([f for _, _, f in self.samples])
        ci = bootstrap_frechet_distance(
            real, fake, resamples, confidence, seed, unit="samples", method="basic",
            groups=[r.shape[0] for _, r, _ in self.samples], keys=keys, value=self.compute(), device=device,
        )
        return Interval(ci.low, ci.high, confidence, resamples, "sample", seed, std=ci.std, method="basic")


# --------------------------------------------------------------------------- per sample


@dataclass
class FeatureTimer:
    """Time spent in the feature extractor (I3D or Inception) and the clips/images it saw."""

    feature_s: float = 0.0
    clips: int = 0


@dataclass
class PendingSample:
    """One sample whose images are being decoded in the background.

    Attributes:
        key: Sample key.
        cells: Scored cells, in protocol order (``(view, frame)`` or ``(view,)``).
        gt: One future per cell resolving to the ground-truth RGBA ``[H, W, 4]`` uint8.
        pred: One future per cell resolving to the prediction ``[H, W, 3|4]``.
    """

    key: str
    cells: list[tuple[int, ...]]
    gt: list[Future]
    pred: list[Future]

    def batch(self, start: int, stop: int, protocol: Protocol, device: torch.device | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Composited full-resolution ground truth and prediction ``[n, 3, H, W]`` of cells ``start:stop``.

        Images move to ``device`` as uint8 and are composited there (and resized there by the
        callers): on a GPU this keeps the CPU free for PNG decoding, the bottleneck.
        """

        def stack(futures: list[Future]) -> torch.Tensor:
            rgba = torch.stack([P.rgba_to_tensor(f.result(), device) for f in futures])
            return P.composite(rgba, protocol.background)

        return stack(self.gt[start:stop]), stack(self.pred[start:stop])


class _Inline:
    """An executor that runs the task at once (``workers=0``)."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # re-raised by .result(), as a thread pool would
            future.set_exception(exc)
        return future


def submit_sample(sample: Any, paths: Mapping, cells: list[tuple[int, ...]], pool: Any) -> PendingSample:
    """Start decoding one sample's ground truth and prediction images on ``pool``."""
    read_gt = sample.apose if len(cells[0]) == 1 else sample.frame
    return PendingSample(
        key=sample.key,
        cells=cells,
        gt=[pool.submit(read_gt, *c) for c in cells],
        pred=[pool.submit(read_prediction, paths[c]) for c in cells],
    )


def prefetch(samples: Iterator[Any], paths: Mapping[str, Mapping], cells: list[tuple[int, ...]], pool: Any) -> Iterator[PendingSample]:
    """Yield each sample while the next one is already decoding (PNG decoding releases the GIL)."""
    pending = None
    for sample in samples:
        upcoming = submit_sample(sample, paths[sample.key], cells, pool)
        if pending is not None:
            yield pending
        pending = upcoming
    if pending is not None:
        yield pending


def _image_scores(fns: Mapping[str, Callable], gt: torch.Tensor, pr: torch.Tensor, protocol: Protocol, device) -> dict:
    if not fns:
        return {}
    g = P.resize(gt, protocol.image_resolution, protocol.resize_filter).to(device)
    p = P.resize(pr, protocol.image_resolution, protocol.resize_filter).to(device)
    return {m: fn(p, g).cpu().numpy() for m, fn in fns.items()}


def _timed_features(fn: Callable, x: torch.Tensor, batch: int, timer: FeatureTimer) -> torch.Tensor:
    t0 = time.perf_counter()
    out = fn(x, batch)
    timer.feature_s += time.perf_counter() - t0
    timer.clips += x.shape[0]
    return out


def score_multiview_sample(
    sample: PendingSample,
    protocol: Protocol,
    image_fns: Mapping[str, Callable],
    video_variants: tuple[str, ...],
    features: Callable | None,
    batch_size: int,
    device: torch.device,
    timer: FeatureTimer | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Score one sample of the multiview task.

    Args:
        sample: The sample's images (:func:`submit_sample` with ``protocol.cells()``).
        protocol: The protocol.
        image_fns: Per-image metric functions by name.
        video_variants: FVD variants to extract features for.
        features: I3D feature function (needed when ``video_variants`` is not empty).
        batch_size: Cells per image batch; 9-frame clips per I3D batch.
        device: Where the metrics run.
        timer: Accumulates I3D time and clip count.

    Returns:
        ``(grids, feats)``: ``grids[metric]`` ``[V, F]`` per-cell values; ``feats[variant]`` the
        ``(real, fake)`` I3D features ``[clips, 400]`` float64.
    """
    timer = timer or FeatureTimer()
    cells = protocol.cells()
    v, f = protocol.matrix_shape
    r = protocol.fvd_resolution
    grids = {m: np.empty(len(cells)) for m in image_fns}
    if video_variants:
        real_m = torch.empty(len(cells), 3, r, r, device=device)
        fake_m = torch.empty(len(cells), 3, r, r, device=device)
    for start in range(0, len(cells), batch_size):
        chunk = cells[start : start + batch_size]
        gt, pr = sample.batch(start, start + len(chunk), protocol, device)
        for m, values in _image_scores(image_fns, gt, pr, protocol, device).items():
            grids[m][start : start + len(chunk)] = values
        if video_variants:
            real_m[start : start + len(chunk)] = P.resize(gt, r, protocol.resize_filter)
            fake_m[start : start + len(chunk)] = P.resize(pr, r, protocol.resize_filter)
    feats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if video_variants:
        real_m, fake_m = real_m.view(v, f, 3, r, r), fake_m.view(v, f, 3, r, r)
        for variant in video_variants:
            real_c, fake_c = P.fvd_clips(real_m, variant), P.fvd_clips(fake_m, variant)
            n = real_c.shape[0]
            # Long clips (FV4D: V*F frames) get proportionally smaller batches.
            per_batch = max(1, batch_size * 9 // real_c.shape[1])
            both = _timed_features(features, torch.cat([real_c, fake_c]), per_batch, timer)
            feats[variant] = (both[:n], both[n:])
    return {m: g.reshape(v, f) for m, g in grids.items()}, feats


def score_apose_sample(
    sample: PendingSample,
    protocol: Protocol,
    image_fns: Mapping[str, Callable],
    features: Callable | None,
    batch_size: int,
    device: torch.device,
    timer: FeatureTimer | None = None,
) -> tuple[dict[str, np.ndarray], tuple[torch.Tensor, torch.Tensor] | None]:
    """Score one sample of the A-pose task.

    Args:
        sample: The sample's images (:func:`submit_sample` with the cells ``(view,)`` of
            ``protocol.apose_views``).
        protocol: The protocol.
        image_fns: Per-image metric functions by name.
        features: FID feature function, or None.
        batch_size: Images per batch.
        device: Where the metrics run.
        timer: Accumulates feature time and image count.

    Returns:
        ``(grids, feats)``: ``grids[metric]`` ``[num_apose_views, 1]``; ``feats`` the ``(real, fake)``
        FID features ``[views, D]`` or None.
    """
    timer = timer or FeatureTimer()
    cells = sample.cells
    grids = {m: np.empty(len(cells)) for m in image_fns}
    real, fake = [], []
    for start in range(0, len(cells), batch_size):
        chunk = cells[start : start + batch_size]
        gt, pr = sample.batch(start, start + len(chunk), protocol, device)
        for m, values in _image_scores(image_fns, gt, pr, protocol, device).items():
            grids[m][start : start + len(chunk)] = values
        if features is not None:
            size, flt = protocol.image_resolution, protocol.resize_filter
            real.append(_timed_features(features, P.resize(gt, size, flt), batch_size, timer))
            fake.append(_timed_features(features, P.resize(pr, size, flt), batch_size, timer))
    feats = (torch.cat(real), torch.cat(fake)) if features is not None else None
    return {m: g.reshape(-1, 1) for m, g in grids.items()}, feats


# --------------------------------------------------------------------------- provenance


def git_commit(path: str | Path | None = None) -> str | None:
    """Commit of the checkout holding ``path`` (default: this package), ``+dirty`` if modified.

    Returns:
        The commit hash, or None outside a git checkout (e.g. an installed wheel).
    """
    where = str(path or Path(characterbench.__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# --------------------------------------------------------------------------- evaluation


def score_samples(
    config: EvalConfig,
    gt_index: GroundTruthIndex,
    pred_index: PredictionIndex,
    suite: MetricSuite,
    stats: dict[str, SetStatistic],
    device: torch.device,
    timer: FeatureTimer,
    progress: bool,
) -> list[SampleScores]:
    """Stream the ground truth a second time and score every sample.

    Images of the next sample are decoded on ``config.workers`` threads while the current one is
    scored. Set-level features go into ``stats``; per-image values are returned.

    Returns:
        One :class:`SampleScores` per sample, in ``gt_index`` order.

    Raises:
        GroundTruthError: The ground truth differs from ``gt_index`` (changed during the run).
    """
    from tqdm import tqdm

    protocol = config.protocol
    kinds = {m: METRICS[m].kind for m in stats}
    video_variants = tuple(m for m, k in kinds.items() if k == "video")
    cells = protocol.cells() if config.task == "multiview" else [(v,) for v in protocol.apose_views]
    expected = list(gt_index.keys)

    def checked(samples: Iterator[Any]) -> Iterator[Any]:
        for i, sample in enumerate(samples):
            if i >= len(expected) or sample.key != expected[i]:
                raise GroundTruthError(f"ground truth {config.gt} changed during the evaluation (sample {i} is {sample.key!r})")
            yield sample

    per_sample: list[SampleScores] = []
    pool = ThreadPoolExecutor(config.workers, thread_name_prefix="characterbench-decode") if config.workers else _Inline()
    try:
        stream = prefetch(checked(iter_ground_truth(config.gt, validate=False)), pred_index.files, cells, pool)
        for pending in tqdm(stream, total=len(expected), desc=f"eval {config.task}", unit="sample", disable=not progress):
            if config.task == "multiview":
                grids, feats = score_multiview_sample(
                    pending, protocol, suite.image, video_variants, suite.features, config.batch_size, device, timer
                )
            else:
                features = suite.features if "fid" in stats else None
                grids, fid_feats = score_apose_sample(pending, protocol, suite.image, features, config.batch_size, device, timer)
                feats = {"fid": fid_feats} if fid_feats is not None else {}
            for m, (real, fake) in feats.items():
                stats[m].update(pending.key, real, fake)
            per_sample.append(
                SampleScores(
                    key=pending.key,
                    metrics={m: float(g.mean()) for m, g in grids.items()},
                    grid={m: g.tolist() for m, g in grids.items()},
                )
            )
    finally:
        if isinstance(pool, ThreadPoolExecutor):
            pool.shutdown(wait=True, cancel_futures=True)
    if len(per_sample) != len(expected):
        raise GroundTruthError(f"ground truth {config.gt} changed during the evaluation ({len(per_sample)} samples on the second pass)")
    return per_sample


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Turn TF32 off while scoring: cuDNN convolutions default to TF32 on Ampere/Hopper GPUs, which
    moves I3D logits and LPIPS by ~1e-3 relative; benchmark numbers must not depend on the GPU model.
    The previous settings are restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def evaluate(config: EvalConfig, progress: bool = True) -> Results:
    """Run an evaluation.

    Args:
        config: What to evaluate and how.
        progress: Show progress bars.

    Returns:
        The :class:`characterbench.results.Results` record (not yet written to disk).

    Raises:
        KeyError: Unknown task or metric.
        FileNotFoundError: Missing prediction folder or ground truth.
        GroundTruthError: Ground truth that does not fit the protocol, or that changed during the run.
        characterbench.predictions.InvalidPredictionsError: Every problem of the prediction folder.
        ValueError: A set-level metric (FVD, FID) on fewer than 2 samples; a bad device.
        metrics.weights.WeightsNotFoundError: Weights not fetched.
    """
    protocol = config.protocol
    metric_names = resolve_metrics(config.task, config.metrics)
    device = resolve_device(config.device)
    t_start = time.perf_counter()

    gt_index = index_ground_truth(config.gt, protocol, progress=progress)
    pred_index = validate_predictions(config.pred, gt_index, protocol, config.task, workers=max(config.workers, 1))
    kinds = {m: METRICS[m].kind for m in metric_names}
    set_metrics = tuple(m for m in metric_names if kinds[m] in ("video", "set"))
    if set_metrics and len(gt_index.samples) < 2:
        raise ValueError(
            f"{', '.join(set_metrics)} pool statistics over samples and need at least 2, got {len(gt_index.samples)}; "
            "evaluate more samples or select per-image metrics only (--metrics)"
        )

    suite = build_suite(metric_names, protocol, device, config.weights_home)
    stats = {m: SetStatistic(config.bootstrap > 0) for m in set_metrics}

    timer = FeatureTimer()
    t_scoring = time.perf_counter()
    with full_float32():
        per_sample = score_samples(config, gt_index, pred_index, suite, stats, device, timer, progress)
    t_end = time.perf_counter()

    values: dict[str, float] = {}
    for m in metric_names:
        if kinds[m] == "image":
            values[m] = float(np.mean([s.metrics[m] for s in per_sample]))
        else:
            values[m] = stats[m].compute()
    intervals = {}
    t_bootstrap = time.perf_counter()
    if config.bootstrap > 0:
        for m in set_metrics:
            intervals[m] = stats[m].interval(config.bootstrap, protocol.bootstrap_confidence, config.seed, device)
    t_done = time.perf_counter()
    return Results(
        task=config.task,
        label=config.label,
        metrics=values,
        sample_count=len(per_sample),
        clip_counts={m: stats[m].count for m in set_metrics},
        intervals=intervals,
        grid=_mean_grid(per_sample, [m for m in metric_names if kinds[m] == "image"], config.task, protocol),
        per_sample=per_sample,
        protocol_version=protocol.version,
        protocol_fingerprint=protocol.fingerprint(),
        protocol=protocol.to_dict(),
        gt_manifest_hash=gt_index.manifest_hash,
        weights=suite.weights,
        package_version=characterbench.__version__,
        git_commit=git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(device),
        config={
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "protocol"},
            "pred": str(Path(config.pred).resolve()),
            "gt": str(Path(config.gt).resolve()),
            "metrics": list(metric_names),
        },
        timing={
            "total_s": t_done - t_start,
            "scoring_s": t_end - t_scoring,
            "per_sample_s": (t_end - t_scoring) / len(per_sample),
            "feature_s": timer.feature_s,
            "feature_clips": float(timer.clips),
            "feature_clips_per_s": timer.clips / timer.feature_s if timer.feature_s > 0 else 0.0,
            "bootstrap_s": t_done - t_bootstrap,
        },
    )


def _mean_grid(per_sample: list[SampleScores], image_metrics: list[str], task: str, protocol: Protocol) -> Grid:
    values = {m: np.mean([np.asarray(s.grid[m]) for s in per_sample], axis=0).tolist() for m in image_metrics}
    if task == "multiview":
        return Grid("view", list(protocol.views), "frame", list(protocol.frames), values)
    return Grid("view", list(protocol.apose_views), "apose", [0], values)
