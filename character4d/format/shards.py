"""Webdataset ``.tar`` shards of samples: atomic writing and sorted, checked reading."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from character4d.format.names import SampleFormatError
from character4d.format.sample import Sample



class ShardWriter:
    """Write samples to one webdataset ``.tar`` shard, atomically.

    Writes ``<path>.<pid>.tmp`` (unique per process) and renames it to ``path`` when the ``with`` block
    ends without an error;
    on an error the temporary file is removed. Samples must come in strictly increasing key order,
    which makes every shard sorted and free of duplicates. Tar members get a fixed mtime so the same
    samples always give byte-identical shards.

    Args:
        path: the shard path, ending in ``.tar``.

    Raises:
        ValueError: if ``path`` does not end in ``.tar``.
        FileExistsError: (on entering) if ``path`` exists; shards are never overwritten.

    Example::

        with ShardWriter("out/c4d-00000.tar") as writer:
            for sample in samples:
                writer.write(sample)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.suffix != ".tar":
            raise ValueError(f"path: expected a file name ending in .tar, got {self.path}")
        self.tmp_path = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        self.count = 0
        self._last_key: str | None = None
        self._file: Any = None
        self._writer: Any = None

    def __enter__(self) -> ShardWriter:
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; ShardWriter never overwrites a shard")
        from webdataset import TarWriter  # heavy import (pulls in torch when installed)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.tmp_path, "wb")
        # An integer mtime: tarfile writes a PAX header for every float field, which costs readers ~50 us
        # per member to parse.
        self._writer = TarWriter(self._file, encoder=False, mtime=0)
        return self

    def write(self, sample: Sample) -> None:
        """Append one sample.

        Args:
            sample: the sample; its key must be greater than the previous one.

        Raises:
            RuntimeError: if called outside the ``with`` block.
            TypeError: if ``sample`` is not a :class:`Sample`.
            ValueError: if the key does not increase.
        """
        if self._writer is None:
            raise RuntimeError("ShardWriter.write: use it inside 'with ShardWriter(path) as writer:'")
        if not isinstance(sample, Sample):
            raise TypeError(f"sample: expected Sample, got {type(sample).__name__}")
        if self._last_key is not None and sample.key <= self._last_key:
            raise ValueError(
                f"sample.key: expected keys in strictly increasing order, got {sample.key!r} after {self._last_key!r}"
            )
        self._writer.write({"__key__": sample.key, **sample.files})
        self._last_key = sample.key
        self.count += 1

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        writer, handle = self._writer, self._file
        self._writer = self._file = None
        try:
            writer.close()
            handle.flush()
            # fsync before the rename: a renamed shard must never turn out truncated after a crash.
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            self.tmp_path.unlink(missing_ok=True)
            raise
        handle.close()
        if exc_type is None:
            os.replace(self.tmp_path, self.path)
        else:
            self.tmp_path.unlink(missing_ok=True)


def _raw_tar_samples(path: Path, select: Any) -> Iterator[dict]:
    """Yield webdataset's raw sample dicts of one tar, turning read errors into SampleFormatError."""
    from webdataset import tariterators  # heavy import (pulls in torch when installed)

    with open(path, "rb") as stream:
        members = tariterators.tar_file_expander([{"url": str(path), "stream": stream}], select_files=select)
        grouped = tariterators.group_by_keys(members)
        while True:
            try:
                raw = next(grouped)
            except StopIteration:
                return
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                reason = exc.args[0] if exc.args else type(exc).__name__
                raise SampleFormatError(f"{path}: not a readable webdataset tar shard ({reason})") from exc
            yield raw


def _iter_tar(path: Path, keys: set[str] | None, validate: bool) -> Iterator[Sample]:
    # Selecting by member name lets tarfile skip the data of unwanted samples without reading it.
    select = None if keys is None else (lambda name: name.split(".", 1)[0] in keys)
    previous = None
    for raw in _raw_tar_samples(path, select):
        key = raw["__key__"]
        if previous is not None and key <= previous:
            raise SampleFormatError(
                f"{path}: sample {key!r} follows {previous!r}; shards must be sorted by key without duplicates"
            )
        previous = key
        files = {name: data for name, data in raw.items() if not name.startswith("__")}
        try:
            yield Sample.from_files(key, files, validate=validate)
        except SampleFormatError as exc:
            raise SampleFormatError(f"{path}: {exc}", exc.problems) from exc


