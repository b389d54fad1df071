"""The folder layout of a sample (``<root>/<key>/apose/view00.png``, ...): atomic writing and reading."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from character4d.format.names import SampleFormatError, field_to_path, path_to_field
from character4d.format.sample import Sample



def read_folder_sample(folder: str | os.PathLike, validate: bool = True) -> Sample:
    """Read one sample folder (``<key>/meta.json``, ``apose/view00.png``, ...).

    Hidden files (``.DS_Store``...) are ignored; any other file outside the layout is an error.

    Args:
        folder: the sample folder; its name is the key.
        validate: run :meth:`Sample.validate`.

    Returns:
        The sample.

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
        SampleFormatError: if a file is outside the layout or the sample is invalid (names the folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no such sample folder {folder}")
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_dir() or any(part.startswith(".") for part in relative.parts):
            continue
        try:
            files[path_to_field(relative.as_posix())] = path.read_bytes()
        except SampleFormatError as exc:
            raise SampleFormatError(f"{folder}: {exc}") from exc
    try:
        return Sample.from_files(folder.name, files, validate=validate)
    except SampleFormatError as exc:
        raise SampleFormatError(f"{folder}: {exc}", exc.problems) from exc


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_folder_sample(sample: Sample, root: str | os.PathLike) -> Path:
    """Write a sample as ``root/<key>/`` atomically.

    Files go to ``root/.<key>.<pid>.tmp/`` first (unique per process; a leftover one is removed), are
    fsynced, and the folder is renamed to ``root/<key>`` only when complete, so a reader or a resumed
    job never sees half a sample, even after a node crash or power loss.

    Args:
        sample: the sample.
        root: the export root (created if missing).

    Returns:
        The sample folder ``root/<key>``.

    Raises:
        TypeError: if ``sample`` is not a :class:`Sample`.
        FileExistsError: if ``root/<key>`` already exists (nothing is replaced).
        SampleFormatError: if a field has no folder path.
    """
    if not isinstance(sample, Sample):
        raise TypeError(f"sample: expected Sample, got {type(sample).__name__}")
    root = Path(root)
    final = root / sample.key
    if final.exists():
        raise FileExistsError(f"{final} already exists; write_folder_sample never replaces a sample")
    paths = {name: field_to_path(name) for name in sample.files}
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{sample.key}.{os.getpid()}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        for name in sorted(paths):
            target = staging / paths[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_durable(target, sample.files[name])
        # The data, then the folders' entries, reach the disk before the rename makes the sample
        # visible: after a power loss a renamed sample is complete, never a set of truncated files.
        for folder in sorted({staging / PurePosixPath(p).parent for p in paths.values()}, reverse=True):
            _fsync_dir(folder)
        os.rename(staging, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


