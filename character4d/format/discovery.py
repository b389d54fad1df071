"""Finding samples on disk: `open_samples` reads a shard, shard folder, folder export or render output."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from character4d.format.folders import read_folder_sample, write_folder_sample
from character4d.format.names import META, SampleFormatError, parse_key
from character4d.format.sample import Sample
from character4d.format.shards import _iter_tar

def _iter_folders(folders: list[Path], keys: set[str] | None, validate: bool) -> Iterator[Sample]:
    for folder in folders:
        if keys is None or folder.name in keys:
            yield read_folder_sample(folder, validate=validate)


def _discover(directory: Path) -> tuple[str, list[Path]]:
    """Classify a directory as ("folder", [itself]), ("tars", shards) or ("folders", sample folders)."""
    if (directory / META).is_file():
        return "folder", [directory]
    visible = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    # Only complete shards end in .tar; partial ones end in .tar.tmp.
    tars = [p for p in visible if p.is_file() and p.suffix == ".tar"]
    folders = [p for p in visible if p.is_dir() and (p / META).is_file()]
    if tars and folders:
        raise SampleFormatError(
            f"{directory}: holds both .tar shards and sample folders; point open_samples at one of them"
        )
    if tars:
        return "tars", tars
    if folders:
        return "folders", folders
    if (directory / "shards").is_dir():  # the out_dir of character4d.jobs.run_jobs
        kind, found = _discover(directory / "shards")
        if kind == "tars":
            return kind, found
    raise SampleFormatError(
        f"{directory}: no samples found (expected .tar shards, sample folders holding meta.json, "
        "a sample folder, or a 'shards' subfolder)"
    )


def open_samples(
    path: str | os.PathLike, keys: Iterable[str] | None = None, validate: bool = True
) -> Iterator[Sample]:
    """Iterate over the samples of a shard, a shard directory, a folder export or one sample folder.

    Order is deterministic: shards in file-name order and samples in key order within each shard;
    sample folders in key order. Partial outputs (``*.tmp``, hidden staging folders) are ignored.

    Args:
        path: a ``.tar`` shard; a directory of ``.tar`` shards; a folder-export root (subfolders
            holding meta.json); one sample folder; or a run_jobs output directory (reads ``shards/``).
        keys: if given, only these samples are read (others are skipped without decoding), and a
            requested key that is not found raises at the end of the iteration.
        validate: run :meth:`Sample.validate` on each sample.

    Returns:
        An iterator of :class:`Sample`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SampleFormatError: for unreadable/corrupt shards, invalid samples, duplicate keys across
            sources, or requested keys that are missing; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: {path} does not exist")
    wanted = None if keys is None else {key for key in keys}
    if wanted is not None:
        for key in wanted:
            parse_key(key)
    if path.is_file():
        if path.suffix != ".tar":
            raise SampleFormatError(f"path: expected a .tar shard or a directory, got {path}")
        kind, sources = "tars", [path]
    else:
        kind, sources = _discover(path)
    return _open_sources(path, kind, sources, wanted, validate)


def _open_sources(
    path: Path, kind: str, sources: list[Path], wanted: set[str] | None, validate: bool
) -> Iterator[Sample]:
    seen: dict[str, Path] = {}
    streams = [(src, _iter_tar(src, wanted, validate)) for src in sources] if kind == "tars" else [
        (path, _iter_folders(sources, wanted, validate))
    ]
    for source, stream in streams:
        for sample in stream:
            if sample.key in seen:
                raise SampleFormatError(f"{source}: sample {sample.key!r} was already read from {seen[sample.key]}")
            seen[sample.key] = source
            yield sample
    if wanted is not None and wanted - seen.keys():
        missing = sorted(wanted - seen.keys())
        raise SampleFormatError(f"{path}: requested keys not found: {', '.join(missing)}")


def export_folders(
    src: str | os.PathLike, root: str | os.PathLike, keys: Iterable[str] | None = None
) -> list[Path]:
    """Convert shards (or any source :func:`open_samples` reads) to sample folders under ``root``.

    Args:
        src: anything :func:`open_samples` accepts.
        root: the export root; ``root/<key>/`` must not exist yet.
        keys: optional subset of keys.

    Returns:
        The written sample folders, in reading order.

    Raises:
        FileExistsError: if a sample folder already exists.
        SampleFormatError: if the source is invalid.
    """
    return [write_folder_sample(sample, root) for sample in open_samples(src, keys=keys)]
