"""Prefetching: each sample's ground truth and predictions decode on worker threads (PNG decoding
releases the GIL) while the previous sample is scored; each file is decoded once, for every metric."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from characterbench import protocol as P
from characterbench.protocol import Protocol


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
        gt: One future per cell resolving to the task's ground truth of the cell (the RGBA
            ``[H, W, 4]`` uint8 image for the image tasks).
        pred: One future per cell resolving to the decoded prediction (``[H, W, 3|4]`` images).
        sample: The ground-truth ``character4d.format.Sample`` (cameras, joints; decoded lazily).
    """

    key: str
    cells: list[tuple[int, ...]]
    gt: list[Future]
    pred: list[Future]
    sample: Any = None

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


def submit_sample(sample: Any, paths: Mapping, cells: list[tuple[int, ...]], pool: Any, task: Any = None,
                  read: Callable[[Any], Any] | None = None) -> PendingSample:
    """Start decoding one sample's ground truth and predictions on ``pool`` (each file once: the
    decoded arrays serve every metric).

    Args:
        read: Reads one prediction file (default: the task's ``read_prediction``); the evaluation
            passes ``PredictionIndex.reader``, which hands out what validation already decoded.
    """
    if task is None:
        from characterbench.tasks import get_task

        task = get_task("multiview" if len(cells[0]) == 2 else "apose")
    read = task.read_prediction if read is None else read
    return PendingSample(
        key=sample.key,
        cells=cells,
        gt=[pool.submit(task.read_gt, sample, c) for c in cells],
        pred=[pool.submit(read, paths[c]) for c in cells],
        sample=sample,
    )


def prefetch(samples: Iterator[Any], paths: Mapping[str, Mapping], cells: list[tuple[int, ...]], pool: Any,
             task: Any = None, read: Callable[[Any], Any] | None = None) -> Iterator[PendingSample]:
    """Yield each sample while the next one is already decoding (PNG decoding releases the GIL)."""
    pending = None
    for sample in samples:
        upcoming = submit_sample(sample, paths[sample.key], cells, pool, task, read)
        if pending is not None:
            yield pending
        pending = upcoming
    if pending is not None:
        yield pending


