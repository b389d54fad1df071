"""Configuration of an evaluation (light: importable without torch, for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from characterbench.protocol import PROTOCOL_V1, Protocol


@dataclass(frozen=True)
class EvalConfig:
    """What ``characterbench eval`` runs.

    Attributes:
        pred: Prediction folder.
        gt: Ground truth (character4d shards, a folder of shards, or a folder export).
        task: ``"multiview"`` or ``"apose"``.
        metrics: Metric names to compute (default: all of the task's).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: Images per metric batch, and 9-frame clips per I3D batch.
        workers: Threads decoding images ahead of the metrics (0: decode inline).
        bootstrap: Resamples of the FVD/FID bootstrap interval (0: no interval).
        seed: Seed of the bootstrap.
        label: Name of the evaluated method, copied into the record.
        weights_home: Weights cache root (default ``$CHARACTERBENCH_HOME``).
        protocol: The protocol (default: v1).
    """

    pred: str
    gt: str
    task: str = "multiview"
    metrics: tuple[str, ...] | None = None
    device: str = "auto"
    batch_size: int = 27
    workers: int = 4
    bootstrap: int = 1000
    seed: int = 0
    label: str | None = None
    weights_home: str | None = None
    protocol: Protocol = PROTOCOL_V1

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers: expected >= 0, got {self.workers}")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap: expected >= 0 resamples, got {self.bootstrap}")
