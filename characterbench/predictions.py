"""Prediction folders: layout, validation before any metric runs, and reading.

Each task owns its layout (``characterbench/tasks/``; ``VV`` two digits, ``FFF`` three digits, rig
indices):

- multiview: ``<pred>/<sample_key>/view{VV}/frame{FFF}.png`` for the protocol's 9 x 9 matrix, or
  for the complete rig grid (21 views x 25 frames), from which the protocol picks its cells;
- apose: ``<pred>/<sample_key>/apose/view{VV}.png`` for every A-pose view of the protocol (21);
- pose: ``<pred>/<sample_key>/pose/view{VV}/frame{FFF}.png`` (pose map) or ``.json`` (keypoints).

One folder may hold several tasks; each task ignores the others' sub-folders. Images are PNG (RGB,
or RGBA composited on the protocol background) or ``.npy`` arrays ``[H, W, 3|4]`` (uint8, or
float in [0, 1]), at the ground truth's size. Every problem (missing, extra, duplicate,
unreadable, wrongly sized, unsupported mode or dtype, NaN/inf, out of range) is collected and
raised at once in :class:`InvalidPredictionsError`; PNGs are decoded in full during validation.

Validation can keep what it decoded (``keep_bytes``): :meth:`PredictionIndex.reader` then hands the
scoring each file's decoded prediction instead of decoding the PNG a second time, and decodes again
only what did not fit in the budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from characterbench.groundtruth import GroundTruthIndex, GroundTruthSample
from characterbench.protocol import Protocol

IMAGE_SUFFIXES = (".png", ".npy")
PNG_MODES = ("RGB", "RGBA")
APOSE_DIR = "apose"

Cell = tuple[int, ...]  # (view, frame) for multiview and pose, (view,) for apose


def cell_path(root: str | Path, key: str, cell: Cell, suffix: str = ".png", task: str | None = None) -> Path:
    """Where a prediction image lives.

    Args:
        root: Prediction folder.
        key: Sample key.
        cell: ``(view, frame)`` (multiview) or ``(view,)`` (apose), rig indices.
        suffix: ``".png"`` or ``".npy"`` (``".json"`` for pose keypoints).
        task: The task (default: ``multiview`` for a 2-tuple cell, ``apose`` for a 1-tuple).

    Returns:
        The task's path, e.g. ``root/key/view{VV}/frame{FFF}.png`` or ``root/key/apose/view{VV}.png``.
    """
    if task is None:
        if len(cell) not in (1, 2):
            raise ValueError(f"expected a cell (view, frame) or (view,), got {cell!r}")
        task = "multiview" if len(cell) == 2 else "apose"
    return get_task(task).pred_path(root, key, cell, suffix)


@dataclass(frozen=True)
class Problem:
    """One problem of a prediction folder.

    Attributes:
        kind: ``missing``, ``extra``, ``duplicate``, ``unreadable``, ``wrong_size``, ``bad_mode``,
            ``nan`` or ``out_of_range``.
        path: The file or folder concerned, relative to the prediction folder.
        detail: What was expected and what came.
    """

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:12s} {self.path}: {self.detail}"


def get_task(name: str):
    """The task registered under ``name`` (imported late: the tasks import this module's helpers)."""
    from characterbench.tasks import get_task as _get

    return _get(name)


class InvalidPredictionsError(ValueError):
    """A prediction folder failed validation; ``.problems`` lists every problem found."""

    def __init__(self, root: Path, task: str, problems: list[Problem]):
        self.root = root
        self.task = task
        self.problems = problems
        lines = [
            f"{len(problems)} problem(s) in prediction folder {root} for task {task!r} "
            f"(expected layout: {get_task(task).layout}):"
        ]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class PredictionIndex:
    """A validated prediction folder.

    Attributes:
        root: The folder.
        task: Task it was validated for.
        files: ``files[key][cell]`` is the path of that cell's image; it holds exactly the cells the
            protocol scores.
        layouts: ``layouts[key]`` is ``"matrix"``, ``"full"`` (multiview) or ``"apose"``.
        decoded: Predictions decoded during validation, by path (what the task's
            ``read_prediction`` returns), kept within the ``keep_bytes`` budget of
            :func:`validate_predictions`; :meth:`reader` hands each out once and forgets it.
    """

    root: Path
    task: str
    files: Mapping[str, Mapping[Cell, Path]]
    layouts: Mapping[str, str] = field(default_factory=dict)
    decoded: dict[Path, Any] = field(default_factory=dict, repr=False, compare=False)

    def reader(self, read: Callable[[Path], Any]) -> Callable[[Path], Any]:
        """A prediction reader that takes a file's value decoded during validation (once: it is
        dropped from :attr:`decoded`, so memory is freed as the scoring advances) and calls ``read``
        (e.g. the task's ``read_prediction``) for files that were not kept."""

        def take(path: Path) -> Any:
            value = self.decoded.pop(path, None)
            return read(path) if value is None else value

        return take


def default_keep_bytes() -> int:
    """Budget for predictions kept decoded between validation and scoring: half the memory
    available now (``/proc/meminfo`` MemAvailable), at most 8 GiB (a 100-sample multiview folder
    of 512 px RGBA PNGs decodes to 8100 x 1 MiB = 7.9 GiB); 1 GiB where the figure cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return min(8 << 30, int(line.split()[1]) * 1024 // 2)
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30


def read_prediction(path: str | Path) -> np.ndarray:
    """Decode one prediction image.

    Args:
        path: A ``.png`` (RGB or RGBA) or ``.npy`` file.

    Returns:
        ``[H, W, 3|4]`` uint8, or float32 in [0, 1] for float ``.npy`` files.

    Raises:
        ValueError: Unsupported suffix, PNG mode, array shape or dtype, or non-finite values.
        OSError: The file cannot be read or decoded.
    """
    path = Path(path)
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            if img.mode not in PNG_MODES:
                raise ValueError(f"{path}: expected PNG mode {PNG_MODES}, got {img.mode!r}")
            try:
                return np.asarray(img.convert(img.mode))
            except OSError as exc:  # PIL's decode errors do not name the file
                raise OSError(f"{path}: cannot decode PNG pixel data: {exc}") from exc
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        _check_array(arr)
        return arr if arr.dtype == np.uint8 else arr.astype(np.float32)
    raise ValueError(f"{path}: expected one of {IMAGE_SUFFIXES}, got {path.suffix!r}")


def _check_array(arr: np.ndarray) -> None:
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an array [H, W, 3|4], got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected dtype uint8 or float, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"contains {int((~np.isfinite(arr)).sum())} NaN/inf values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"expected float values in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]")


def check_image_file(path: Path, rel: str, size: tuple[int, int]) -> list[Problem]:
    """Every problem of one image file; PNGs are decoded in full (pixel data that fails to decode
    would otherwise stop the evaluation mid-run)."""
    return inspect_image_file(path, rel, size)[0]


def inspect_image_file(path: Path, rel: str, size: tuple[int, int]) -> tuple[list[Problem], np.ndarray | None]:
    """Every problem of one image file, and the decoded image of a sound PNG.

    Args:
        path: The file.
        rel: Its name relative to the prediction folder (for the problems).
        size: ``(W, H)`` it must have.

    Returns:
        ``(problems, image)``: ``image`` is what :func:`read_prediction` returns (``[H, W, 3|4]``
        uint8) for a PNG without problems, else None (``.npy`` files are cheap to read again).
    """
    expected = f"{size[1]}x{size[0]} (HxW, the ground truth's size)"
    problems = []
    if path.suffix == ".png":
        from PIL import Image

        try:
            with Image.open(path) as img:
                mode, got = img.mode, img.size  # (W, H)
                img.verify()  # chunk CRCs: catches truncated or corrupted files
            with Image.open(path) as img:  # verify() leaves the image unusable: reopen to decode
                img.load()
                image = np.asarray(img) if mode in PNG_MODES else None
        except Exception as exc:  # PIL raises many types for broken files  # noqa: BLE001
            return [Problem("unreadable", rel, f"cannot read PNG: {type(exc).__name__}: {exc}")], None
        if mode not in PNG_MODES:
            problems.append(Problem("bad_mode", rel, f"expected PNG mode RGB or RGBA, got {mode!r}"))
        if got != size:
            problems.append(Problem("wrong_size", rel, f"expected {expected}, got {got[1]}x{got[0]}"))
        return problems, (None if problems else image)
    return _check_npy_file(path, rel, size, expected), None


def _check_npy_file(path: Path, rel: str, size: tuple[int, int], expected: str) -> list[Problem]:
    problems = []
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        return [Problem("unreadable", rel, f"cannot read .npy: {type(exc).__name__}: {exc}")]
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        problems.append(Problem("wrong_size", rel, f"expected an array [H, W, 3|4], got shape {arr.shape}"))
    elif (arr.shape[1], arr.shape[0]) != size:
        problems.append(Problem("wrong_size", rel, f"expected {expected}, got {arr.shape[0]}x{arr.shape[1]}"))
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        problems.append(Problem("bad_mode", rel, f"expected dtype uint8 or float, got {arr.dtype}"))
    elif arr.dtype != np.uint8:
        try:
            data = np.asarray(arr)
        except Exception as exc:  # a truncated file fails only when its data is read  # noqa: BLE001
            return problems + [Problem("unreadable", rel, f"cannot read .npy data: {type(exc).__name__}: {exc}")]
        finite = np.isfinite(data)
        if bad := int((~finite).sum()):
            problems.append(Problem("nan", rel, f"expected finite values, got {bad} NaN/inf values"))
        if finite.any() and (data[finite].min() < 0.0 or data[finite].max() > 1.0):
            lo, hi = data[finite].min(), data[finite].max()
            problems.append(Problem("out_of_range", rel, f"expected values in [0, 1], got [{lo:.4g}, {hi:.4g}]"))
    return problems


def _scan_sample(
    root: Path, gt: GroundTruthSample, task_name: str, protocol: Protocol, problems: list[Problem],
    checks: list[tuple[Any, Path, str, tuple[int, int]]],
) -> tuple[dict[Cell, Path], str]:
    """Find one sample folder's files; returns the scored cells' paths and the layout.

    Layout problems go to ``problems``; the per-file content checks are appended to ``checks`` as
    ``(task, path, relative name, expected size)`` and run later, in parallel. Entries that belong to
    another task's layout are ignored.
    """
    from characterbench.tasks import TASKS

    task = get_task(task_name)
    folder = root / gt.key
    found: dict[Cell, Path] = {}
    extras: list[str] = []
    for entry in sorted(folder.iterdir()):
        if not task.owns(entry.name):
            if not any(t.owns(entry.name) for t in TASKS.values()):
                extras.append(str(entry.relative_to(root)))
            continue
        files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]
        for f in files:
            rel = str(f.relative_to(root))
            cell = task.match(f.relative_to(folder).parts, gt)
            if cell is None:
                extras.append(rel)
            elif cell in found:
                problems.append(Problem("duplicate", rel, f"same cell as {found[cell].relative_to(root)}"))
            else:
                found[cell] = f
    problems.extend(
        Problem("extra", e, f"not part of the {task.name} layout for a {gt.num_views}-view x {gt.num_frames}-frame sample")
        for e in extras
    )
    wanted, layout = task.wanted(gt, protocol, found)
    for cell in wanted:
        if cell not in found:
            what = "the complete rig grid (some cells outside the 9x9 matrix are present)" if layout == "full" else layout
            rel = task.pred_path(root, gt.key, cell).relative_to(root)
            problems.append(Problem("missing", str(rel), f"needed by the {what} layout"))
    size = task.expected_size(gt)
    for cell in wanted:
        if cell in found:
            checks.append((task, found[cell], str(found[cell].relative_to(root)), size))
    return {c: found[c] for c in task.cells(protocol) if c in found}, layout


def validate_predictions(
    pred: str | Path, gt: GroundTruthIndex, protocol: Protocol, task: str = "multiview", workers: int = 8,
    keep_bytes: int = 0,
) -> PredictionIndex:
    """Check a prediction folder against the ground truth before any metric runs.

    Args:
        pred: Prediction folder.
        gt: Index of the ground truth (:func:`characterbench.groundtruth.index_ground_truth`).
        protocol: The protocol (cells and A-pose views to score).
        task: ``"multiview"`` or ``"apose"``.
        workers: Threads decoding files for the content checks (PNG decoding releases the GIL; a
            100-sample folder holds 8100 images).
        keep_bytes: Keep decoded predictions up to this many bytes in the index' ``decoded`` (for
            the scoring, so that no PNG is decoded twice; see :func:`default_keep_bytes`); 0 keeps none.

    Returns:
        The :class:`PredictionIndex` of the scored cells.

    Raises:
        InvalidPredictionsError: With every problem found (missing, extra, duplicate, unreadable,
            wrong size, unsupported mode/dtype, NaN/inf, out of range).
        FileNotFoundError: ``pred`` is not a directory.
        KeyError: Unknown task.
    """
    get_task(task)
    root = Path(pred)
    if not root.is_dir():
        raise FileNotFoundError(f"prediction folder {root} does not exist or is not a directory")
    problems: list[Problem] = []
    by_key = {s.key: s for s in gt.samples}
    for entry in sorted(root.iterdir()):
        if entry.name not in by_key:
            kind = "sample folder" if entry.is_dir() else "file"
            problems.append(Problem("extra", entry.name, f"{kind} that matches no ground-truth sample key"))
    files: dict[str, dict[Cell, Path]] = {}
    layouts: dict[str, str] = {}
    checks: list[tuple[Any, Path, str, tuple[int, int]]] = []
    for key, sample in by_key.items():
        folder = root / key
        if not folder.is_dir():
            problems.append(Problem("missing", key, f"sample folder for ground-truth sample {key!r}"))
            continue
        files[key], layouts[key] = _scan_sample(root, sample, task, protocol, problems, checks)
    decoded: dict[Path, Any] = {}
    budget = _Budget(keep_bytes)

    def check(item: tuple[Any, Path, str, tuple[int, int]]) -> list[Problem]:
        checker, path, rel, size = item
        if keep_bytes <= 0:
            return checker.check_file(path, rel, size)
        file_problems, value = checker.check_and_decode(path, rel, size)
        if value is not None and budget.take(int(getattr(value, "nbytes", 0))):
            decoded[path] = value
        return file_problems

    if workers > 1 and len(checks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="characterbench-validate") as pool:
            found = list(pool.map(check, checks))
    else:
        found = [check(c) for c in checks]
    for file_problems in found:  # in file order, whatever the threads' timing
        problems.extend(file_problems)
    if problems:
        raise InvalidPredictionsError(root, task, problems)
    return PredictionIndex(root=root, task=task, files=files, layouts=layouts, decoded=decoded)


class _Budget:
    """A byte budget shared by the validation threads."""

    def __init__(self, total: int):
        self.left = total
        self.lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self.lock:
            if nbytes > self.left:
                return False
            self.left -= nbytes
            return True
