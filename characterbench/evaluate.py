"""``characterbench eval``: score a prediction folder against the ground truth under a protocol.

The evaluation reads the ground truth twice and streams it: the first pass indexes it (keys, sizes,
manifest hash) so that the prediction folder is validated before any metric runs; the second pass
scores one sample at a time, so memory holds one sample's ground-truth images, never the test set.
Validation decodes every prediction PNG and keeps the decoded images within a memory budget
(``predictions.default_keep_bytes``: half the available memory, at most 8 GiB), which the scoring
takes instead of decoding them again; each one is dropped once scored. Per-image
metrics keep one number per cell; FVD and FID keep float64 running sums of their features
(``metrics.fvd``), plus each sample's features (20 x 400 per side for FVD) for the bootstrap
interval, which resamples samples, not clips, because a sample's clips are not independent.

This module holds the evaluation loop and the set statistics; decoding ahead lives in
``characterbench.prefetch``, the record's code provenance in ``characterbench.provenance``, each task's
scoring in ``characterbench/tasks/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

import characterbench
from characterbench.config import EvalConfig
from characterbench.groundtruth import GroundTruthError, GroundTruthIndex, index_ground_truth, iter_ground_truth
from characterbench.metric_specs import METRICS
from characterbench.predictions import PredictionIndex, default_keep_bytes, validate_predictions
from characterbench.prefetch import FeatureTimer, PendingSample, _Inline, prefetch, submit_sample  # noqa: F401 (re-exported)
from characterbench.protocol import Protocol
from characterbench.provenance import SCORING_PATHS, git_commit  # noqa: F401 (re-exported)
from characterbench.results import Grid, Interval, Results, SampleScores
from characterbench.scorers import MetricSuite, build_suite, describe_device, resolve_device
from characterbench.tasks import get_task, resolve_metrics


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
    task = get_task(config.task)
    metric_names = resolve_metrics(config.task, config.metrics)
    cells = task.cells(protocol)
    expected = list(gt_index.keys)

    def checked(samples: Iterator[Any]) -> Iterator[Any]:
        for i, sample in enumerate(samples):
            if i >= len(expected) or sample.key != expected[i]:
                raise GroundTruthError(f"ground truth {config.gt} changed during the evaluation (sample {i} is {sample.key!r})")
            yield sample

    per_sample: list[SampleScores] = []
    pool = ThreadPoolExecutor(config.workers, thread_name_prefix="characterbench-decode") if config.workers else _Inline()
    try:
        samples = checked(iter_ground_truth(config.gt, validate=False))
        stream = prefetch(samples, pred_index.files, cells, pool, task, pred_index.reader(task.read_prediction))
        for pending in tqdm(stream, total=len(expected), desc=f"eval {config.task}", unit="sample", disable=not progress):
            scored = task.score_sample(pending, protocol, suite, metric_names, config.batch_size, device, timer)
            for m, (real, fake) in scored.features.items():
                stats[m].update(pending.key, real, fake)
            per_sample.append(
                SampleScores(
                    key=pending.key,
                    metrics={**{m: float(g.mean()) for m, g in scored.grids.items()}, **scored.values},
                    grid={m: g.tolist() for m, g in scored.grids.items()},
                    breakdown=scored.breakdown or None,
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


# glibc's mallopt parameters and their defaults (malloc/malloc.c).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


@contextlib.contextmanager
def retained_heap() -> Iterator[None]:
    """Keep freed memory in the process while scoring (glibc only; elsewhere a no-op).

    The metric networks allocate and free activations of tens to hundreds of MB per batch. glibc
    serves every allocation above its mmap threshold (32 MiB at most) with fresh pages from the kernel
    and unmaps them on free, so each batch page-faults and zero-fills its memory again: on 2 CPU cores
    that was 40% of a 4-sample evaluation's CPU time (111 s of 273 s in the kernel, 54 million page
    faults). With mmap off and no trimming, freed blocks are reused instead; the defaults are restored
    and the heap trimmed afterwards. Numbers do not change: only where the memory comes from.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        trim(0)


def evaluate(config: EvalConfig, progress: bool = True) -> Results:
    """Run an evaluation (:func:`evaluate_with_index` without the index)."""
    return evaluate_with_index(config, progress)[0]


def evaluate_with_index(config: EvalConfig, progress: bool = True) -> tuple[Results, PredictionIndex]:
    """Run an evaluation.

    Args:
        config: What to evaluate and how.
        progress: Show progress bars.

    Returns:
        The :class:`characterbench.results.Results` record (not yet written to disk) and the validated
        :class:`~characterbench.predictions.PredictionIndex` (which files were scored; ``submit`` stores
        their manifest without reading the folder again).

    Raises:
        KeyError: Unknown task or metric.
        FileNotFoundError: Missing prediction folder or ground truth.
        GroundTruthError: Ground truth that does not fit the protocol, or that changed during the run.
        characterbench.predictions.InvalidPredictionsError: Every problem of the prediction folder.
        ValueError: A set-level metric (FVD, FID) on fewer than 2 samples; a bad device.
        metrics.weights.WeightsNotFoundError: Weights not fetched.
    """
    protocol = config.protocol
    task = get_task(config.task)
    metric_names = resolve_metrics(config.task, config.metrics)
    device = resolve_device(config.device)
    t_start = time.perf_counter()

    gt_index = index_ground_truth(config.gt, protocol, progress=progress)
    # Validation decodes every prediction; what fits the budget is kept for the scoring (decoded once).
    pred_index = validate_predictions(config.pred, gt_index, protocol, config.task, workers=max(config.workers, 1),
                                      keep_bytes=default_keep_bytes())
    levels = {m: METRICS.get(m).level for m in metric_names}
    set_metrics = tuple(m for m in metric_names if levels[m] == "set")
    if set_metrics and len(gt_index.samples) < 2:
        from character4d.errors import InputError

        raise InputError(
            f"{', '.join(set_metrics)} pool statistics over samples and need at least 2, got {len(gt_index.samples)}; "
            "evaluate more samples or select per-image metrics only (--metrics)"
        )

    suite = build_suite(metric_names, protocol, device, config.weights_home)
    stats = {m: SetStatistic(config.bootstrap > 0) for m in set_metrics}

    timer = FeatureTimer()
    t_scoring = time.perf_counter()
    with full_float32(), retained_heap():
        per_sample = score_samples(config, gt_index, pred_index, suite, stats, device, timer, progress)
    t_end = time.perf_counter()

    values: dict[str, float] = {}
    for m in metric_names:
        if levels[m] == "set":
            values[m] = stats[m].compute()
        else:  # cell metrics: every sample has all cells, so the mean of sample means is the cell mean
            values[m] = float(np.mean([s.metrics[m] for s in per_sample]))
    intervals = {}
    t_bootstrap = time.perf_counter()
    if config.bootstrap > 0:
        with retained_heap():  # its replicate batches are hundreds of MB each, as the networks' activations
            for m in set_metrics:
                intervals[m] = stats[m].interval(config.bootstrap, protocol.bootstrap_confidence, config.seed, device)
    t_done = time.perf_counter()
    record = Results(
        task=config.task,
        label=config.label,
        metrics=values,
        sample_count=len(per_sample),
        clip_counts={m: stats[m].count for m in set_metrics},
        intervals=intervals,
        grid=_mean_grid(per_sample, [m for m in metric_names if levels[m] == "cell"], task, protocol),
        breakdown=_mean_breakdown(per_sample),
        per_sample=per_sample,
        protocol_version=protocol.version,
        protocol_fingerprint=protocol.fingerprint(),
        protocol=protocol.to_dict(),
        gt_manifest_hash=gt_index.manifest_hash,
        weights=suite.weights,
        official=suite.official,
        package_version=characterbench.__version__,
        git_commit=git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(device),
        config={
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "protocol"},
            # Folder names only: a record must not carry the absolute paths of the machine it ran on.
            "pred": Path(config.pred).resolve().name,
            "gt": Path(config.gt).resolve().name,
            "metrics": list(metric_names),
            "weights_home": "custom" if config.weights_home else None,
            "task_version": task.version,
            **({"task_config": dataclasses.asdict(task.config)} if dataclasses.is_dataclass(getattr(task, "config", None)) else {}),
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
    return record, pred_index


def _mean_grid(per_sample: list[SampleScores], cell_metrics: list[str], task: Any, protocol: Protocol) -> Grid:
    values = {m: np.mean([np.asarray(s.grid[m]) for s in per_sample], axis=0).tolist() for m in cell_metrics}
    row_axis, rows, col_axis, cols = task.grid_axes(protocol)
    return Grid(row_axis, rows, col_axis, cols, values)


def _mean_breakdown(per_sample: list[SampleScores]) -> dict[str, dict[str, float]] | None:
    """Per-label means over the samples that have the label (e.g. a joint a character lacks)."""
    out: dict[str, dict[str, list[float]]] = {}
    for s in per_sample:
        for name, table in (s.breakdown or {}).items():
            for label, value in table.items():
                out.setdefault(name, {}).setdefault(label, []).append(value)
    return {n: {k: float(np.mean(v)) for k, v in t.items()} for n, t in out.items()} or None
