"""What crash safety costs per sample: fsynced staging and the full decode before packing.

    python scripts/bench/staging_overhead.py out/c4d [--key ada__dance]

Times, for one rendered sample: staging it as a folder (``write_folder_sample``: every file and folder
fsynced before the rename), reading it back, the header-only validation and the full decode that the job
runner does before a sample enters a tar. Prints a table (seconds per sample).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from character4d.format import open_samples, read_folder_sample, write_folder_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--key", default=None)
    args = parser.parse_args()
    sample = next(iter(open_samples(args.src, keys=[args.key] if args.key else None)))
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd() / "out" if (Path.cwd() / "out").is_dir() else None) as tmp:
        start = time.perf_counter()
        folder = write_folder_sample(sample, Path(tmp))
        rows.append(("stage (write + fsync every file and folder, rename)", time.perf_counter() - start))
        start = time.perf_counter()
        staged = read_folder_sample(folder, validate=False)
        rows.append(("read the staged folder", time.perf_counter() - start))
        start = time.perf_counter()
        staged.validate()
        rows.append(("validate (headers)", time.perf_counter() - start))
        start = time.perf_counter()
        staged.validate(decode=True)
        rows.append(("validate(decode=True) before packing", time.perf_counter() - start))
    size = sum(len(d) for d in sample.files.values()) / 1e6
    print(f"sample {sample.key}: {len(sample.files)} files, {size:.1f} MB; {platform.machine()}, {os.cpu_count()} CPUs")
    print("| step | seconds per sample |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
