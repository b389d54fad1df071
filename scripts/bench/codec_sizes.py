"""Size on disk and encode time per sample for each image codec of ``character4d render --codec``.

Re-encodes one rendered sample (a shard, a sample folder or a render output, anything
``character4d.format.open_samples`` reads) with every codec, writes each into a one-sample webdataset
shard and prints a table: shard size per sample, ratio to the renderer's PNGs, encode seconds. Every
re-encoded sample is decoded again and compared pixel by pixel (visible pixels) with the source.

    python scripts/bench/codec_sizes.py out/c4d [--key ada__dance] [--only webp png]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from character4d.format import Sample, ShardWriter, open_samples, transcode

CODECS = [("png (renderer, as rendered)", None, None), ("png level 1", "png", 1), ("png level 6", "png", 6),
          ("png level 9", "png", 9), ("webp (per image)", "webp", None), ("webp-view (per view)", "webp-view", None)]


def _shard_bytes(sample: Sample, folder: Path, name: str) -> int:
    path = folder / f"{name}.tar"
    with ShardWriter(path) as writer:
        writer.write(sample)
    return path.stat().st_size


def _visible(rgba: np.ndarray) -> np.ndarray:
    return np.where(rgba[..., 3:] == 0, 0, rgba)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--key", default=None)
    parser.add_argument("--only", nargs="+", default=None, help="only the codecs whose label starts with these")
    args = parser.parse_args()
    sample = next(iter(open_samples(args.src, keys=[args.key] if args.key else None)))
    print(f"sample {sample.key}: {sample.num_views} views x {sample.num_frames} frames at {sample.resolution} px; "
          f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = _shard_bytes(sample, Path(tmp), "base")
        for label, codec, level in CODECS:
            if args.only and not any(label.startswith(o) for o in args.only):
                continue
            start = time.perf_counter()
            coded = sample if codec is None else transcode(sample, codec, png_level=level)
            seconds = time.perf_counter() - start
            size = _shard_bytes(coded, Path(tmp), label.split()[0] + str(level))
            start = time.perf_counter()
            exact = all(np.array_equal(_visible(coded.frame(v, f)), _visible(sample.frame(v, f)))
                        and np.array_equal(coded.pose(v, f), sample.pose(v, f))
                        for v in range(sample.num_views) for f in range(sample.num_frames))
            read = time.perf_counter() - start
            rows.append((label, size / 1e6, size / base, seconds, read, exact))
    print(f"| codec | MB per sample | vs rendered PNG | encode s | decode+compare s | visible pixels exact |")
    print("|---|---|---|---|---|---|")
    for label, mb, ratio, enc, dec, exact in rows:
        print(f"| {label} | {mb:.1f} | {ratio:.3f} | {enc:.1f} | {dec:.1f} | {exact} |")


if __name__ == "__main__":
    main()
