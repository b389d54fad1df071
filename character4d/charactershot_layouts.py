"""The folder layouts of the released CharacterShot code and data (DESIGN.md appendix B): export and import.

Export, so that the released training and inference code reads our renders unchanged:

- ``charactershot-train`` (what ``finetune/`` reads, relative to ``Gaojunyao/Character4D/``)::

      train.txt                                   one sequence id (our sample key) per line
      render_results/binded_motion/<seq>/view{k}/<i>.png   RGB, composited on white, square
      render_results/binded_pose/<seq>/<i>.png             the front view's (view 0) pose map, black background

  View folders are ``view0`` ... ``view20`` (no zero padding, as the released code matches ``view(\\d+)``),
  frames are integer stems (the code sorts them by ``int(stem)``). The pose maps are copied as rendered:
  render with ``--pose-variant charactershot`` for the released data's drawing (thin limbs, R/B swapped).

- ``charactershot-inference`` (``inference/examples/4d/``)::

      images/<id>/view{k}.png     720 x 480: the reference image of view k (the A-pose, or frame 0),
                                  resized to 480 x 480 and centred on white
      poses/<id>/<i>.png          720 x 480: the front view's pose map of frame i, centred on black

Import (``character4d import``): a folder in the released Character4D layout (the training layout
above, ``render_results/binded_motion`` and optionally ``binded_pose``) becomes samples, so that
CharacterBench can score methods against the real Character4D renders. The released layout has no
cameras, joints, A-pose renders or per-view pose maps, so an imported sample has: the rig cameras of
the published template (``character4d.cameras.rig_cameras(RigConfig())``, 21 views, which the
released renders use); NaN joints; frame 0 of each view as its A-pose image; the released front-view
pose map as view 0's pose map and black pose maps for the other views. ``meta.json`` records all of
that under ``imported_from``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from character4d.cameras import RigConfig, rig_cameras
from character4d.errors import InputError
from character4d.format import (
    Sample,
    SampleMeta,
    ShardWriter,
    build_sample,
    open_samples,
    sanitize_id,
    sample_key,
    write_folder_sample,
)
from character4d.skeleton import JOINT_NAMES

__all__ = [
    "EXPORT_LAYOUTS",
    "INFERENCE_SIZE",
    "TRAIN_LIST",
    "export_charactershot_inference",
    "export_charactershot_train",
    "import_character4d",
]

EXPORT_LAYOUTS = ("charactershot-train", "charactershot-inference")
TRAIN_LIST = "train.txt"
MOTION_DIR = Path("render_results") / "binded_motion"
POSE_DIR = Path("render_results") / "binded_pose"
# The released inference code feeds 720 x 480 frames: the square render at 480 x 480 centred on a canvas.
INFERENCE_SIZE = (720, 480)
TEMPLATE_VIEWS = 21
IMPORTED_MOTION_ID = "clip"
_VIEW_DIR = re.compile(r"^view(\d+)$")
_FRAME_FILE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite straight-alpha RGBA over white (uint8 [H, W, 3])."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _centred(rgb: np.ndarray, background: int) -> np.ndarray:
    """Resize a square image to 480 x 480 (Lanczos) and centre it on a 720 x 480 canvas."""
    width, height = INFERENCE_SIZE
    square = np.asarray(Image.fromarray(rgb).resize((height, height), Image.Resampling.LANCZOS))
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    offset = (width - height) // 2
    canvas[:, offset : offset + height] = square
    return canvas


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(array).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def _fresh(folder: Path, key: str) -> None:
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; export into a new root or remove it ({key})")


def export_charactershot_train(src: str | os.PathLike, root: str | os.PathLike,
                               keys: Iterable[str] | None = None) -> list[str]:
    """Write samples in the layout the released ``finetune/`` code reads.

    Args:
        src: anything :func:`character4d.format.open_samples` reads.
        root: the dataset root (the released code's ``Gaojunyao/Character4D``); created if missing.
        keys: optional subset of sample keys.

    Returns:
        The exported sequence ids (sample keys), in reading order; ``root/train.txt`` lists every
        sequence under ``root`` (earlier exports included), sorted.

    Raises:
        FileExistsError: if a sequence folder already exists (nothing is replaced).
        SampleFormatError: for invalid samples.
    """
    root = Path(root)
    exported = []
    for sample in open_samples(src, keys=keys):
        motion = root / MOTION_DIR / sample.key
        _fresh(motion, sample.key)
        _fresh(root / POSE_DIR / sample.key, sample.key)
        for v in range(sample.num_views):
            for f in range(sample.num_frames):
                _save(motion / f"view{v}" / f"{f}.png", _on_white(sample.frame(v, f)))
        for f in range(sample.num_frames):
            _save(root / POSE_DIR / sample.key / f"{f}.png", sample.pose(0, f))
        exported.append(sample.key)
    sequences = sorted(p.name for p in (root / MOTION_DIR).iterdir() if p.is_dir()) if exported else []
    if exported:
        (root / TRAIN_LIST).write_text("".join(f"{seq}\n" for seq in sequences))
    return exported


def export_charactershot_inference(src: str | os.PathLike, root: str | os.PathLike,
                                   keys: Iterable[str] | None = None, reference: str = "apose") -> list[str]:
    """Write samples as the released ``inference/examples/4d`` inputs (720 x 480 frames).

    Args:
        src: anything :func:`character4d.format.open_samples` reads.
        root: the examples folder (``.../inference/examples/4d``); ``images/`` and ``poses/`` go under it.
        keys: optional subset of sample keys.
        reference: the reference image per view: ``"apose"`` (the A-pose render) or ``"frame0"``
            (the first motion frame, whose pose the pose sequence starts from).

    Returns:
        The exported ids (sample keys).

    Raises:
        ValueError: for an unknown ``reference``.
        FileExistsError: if ``images/<id>`` or ``poses/<id>`` exists.
    """
    if reference not in ("apose", "frame0"):
        raise ValueError(f"reference: expected 'apose' or 'frame0', got {reference!r}")
    root = Path(root)
    exported = []
    for sample in open_samples(src, keys=keys):
        images, poses = root / "images" / sample.key, root / "poses" / sample.key
        _fresh(images, sample.key)
        _fresh(poses, sample.key)
        for v in range(sample.num_views):
            rgba = sample.apose(v) if reference == "apose" else sample.frame(v, 0)
            _save(images / f"view{v}.png", _centred(_on_white(rgba), 255))
        for f in range(sample.num_frames):
            _save(poses / f"{f}.png", _centred(sample.pose(0, f), 0))
        exported.append(sample.key)
    return exported


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _numbered(folder: Path, pattern: re.Pattern, what: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            index = int(match.group(1))
            if index in found:
                raise InputError(f"{folder}: {found[index].name} and {path.name} are both {what} {index}")
            found[index] = path
    return found


def _read_rgba(path: Path, size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGBA"))
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    if array.shape[0] != array.shape[1] or (size is not None and array.shape[0] != size):
        want = "square" if size is None else f"{size} x {size} like the other renders"
        raise InputError(f"{path}: expected a {want} image, got {array.shape[1]} x {array.shape[0]}")
    return array


def _read_sequence(root: Path, seq: str) -> dict:
    motion = root / MOTION_DIR / seq
    views = _numbered(motion, _VIEW_DIR, "view")
    missing = [f"view{k}" for k in range(TEMPLATE_VIEWS) if k not in views]
    extra = sorted(k for k in views if k >= TEMPLATE_VIEWS)
    if missing or extra:
        raise InputError(
            f"{motion}: expected the template's view folders view0 ... view{TEMPLATE_VIEWS - 1}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(f'view{k}' for k in extra)}" if extra else "")
        )
    frames_of = {k: _numbered(views[k], _FRAME_FILE, "frame") for k in range(TEMPLATE_VIEWS)}
    counts = {k: len(frames) for k, frames in frames_of.items()}
    if len(set(counts.values())) != 1 or not counts[0]:
        raise InputError(f"{motion}: every view needs the same number (> 0) of frames, got {counts}")
    num_frames = counts[0]
    for k, frames in frames_of.items():
        if sorted(frames) != list(range(num_frames)):
            raise InputError(f"{views[k]}: expected frames 0.png ... {num_frames - 1}.png, got {sorted(frames)}")
    size = None
    frames = []
    for k in range(TEMPLATE_VIEWS):
        row = []
        for f in range(num_frames):
            row.append(_read_rgba(frames_of[k][f], size))
            size = row[-1].shape[0]
        frames.append(row)
    poses = [[np.zeros((size, size, 3), np.uint8) for _ in range(num_frames)] for _ in range(TEMPLATE_VIEWS)]
    pose_dir = root / POSE_DIR / seq
    has_poses = pose_dir.is_dir()
    if has_poses:
        files = _numbered(pose_dir, _FRAME_FILE, "frame")
        if sorted(files) != list(range(num_frames)):
            raise InputError(f"{pose_dir}: expected pose maps 0.png ... {num_frames - 1}.png, got {sorted(files)}")
        for f in range(num_frames):
            with Image.open(files[f]) as image:
                pose = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.NEAREST))
            poses[0][f] = pose
    return {"frames": frames, "poses": poses, "size": size, "num_frames": num_frames, "has_poses": has_poses}


def import_character4d(src: str | os.PathLike, out: str | os.PathLike, fps: float = 15.0,
                       sequences: Sequence[str] | None = None, fmt: str = "folders",
                       samples_per_tar: int = 8) -> list[str]:
    """Turn a folder in the released Character4D layout into samples.

    Args:
        src: the dataset root holding ``render_results/binded_motion/<seq>/view{k}/<i>.png`` (and
            optionally ``render_results/binded_pose/<seq>/<i>.png``).
        out: output folder: sample folders (``fmt="folders"``) or shards ``c4d-import-{p:04d}.tar``.
        fps: frame rate of the renders (the released layout does not record it).
        sequences: the sequences to import (default: every folder under ``binded_motion``).
        fmt: ``"folders"`` or ``"shards"``.
        samples_per_tar: samples per shard.

    Returns:
        The keys of the imported samples (``{sanitize_id(seq)}__clip``), sorted.

    Raises:
        FileNotFoundError: if ``src`` has no ``render_results/binded_motion``.
        InputError: for a sequence that does not follow the layout (names the folder and the problem).
        ValueError: for a bad ``fps``, ``fmt`` or ``samples_per_tar``.
        FileExistsError: if an output sample or shard exists.
    """
    if not fps > 0:
        raise ValueError(f"fps: expected > 0, got {fps}")
    if fmt not in ("folders", "shards"):
        raise ValueError(f"fmt: expected 'folders' or 'shards', got {fmt!r}")
    if samples_per_tar < 1:
        raise ValueError(f"samples_per_tar: expected >= 1, got {samples_per_tar}")
    src, out = Path(src), Path(out)
    motion_root = src / MOTION_DIR
    if not motion_root.is_dir():
        raise FileNotFoundError(f"{src}: no {MOTION_DIR.as_posix()} folder (expected the released Character4D layout)")
    names = sorted(p.name for p in motion_root.iterdir() if p.is_dir()) if sequences is None else list(sequences)
    if not names:
        raise InputError(f"{motion_root}: no sequences")
    keys: dict[str, str] = {}
    for seq in names:
        key = sample_key(sanitize_id(seq), IMPORTED_MOTION_ID)
        if key in keys:
            raise InputError(f"{motion_root}: sequences {keys[key]!r} and {seq!r} both give the key {key!r}")
        keys[key] = seq
    ordered = sorted(keys)
    if fmt == "folders":
        for key in ordered:
            write_folder_sample(_import_one(src, keys[key], key, fps), out)
    else:
        for p in range(0, len(ordered), samples_per_tar):
            with ShardWriter(out / f"c4d-import-{p // samples_per_tar:04d}.tar") as writer:
                for key in ordered[p : p + samples_per_tar]:  # one sample in memory at a time
                    writer.write(_import_one(src, keys[key], key, fps))
    return ordered


def _import_one(src: Path, seq: str, key: str, fps: float) -> Sample:
    data = _read_sequence(src, seq)
    size, num_frames = data["size"], data["num_frames"]
    cameras = rig_cameras(RigConfig(resolution=size))
    character_id, motion_id = key.split("__")
    meta = SampleMeta(
        character_id=character_id, motion_id=motion_id, num_views=TEMPLATE_VIEWS, num_frames=num_frames,
        resolution=size, fps=float(fps), joint_names=JOINT_NAMES,
        source_times=tuple(f / fps for f in range(num_frames)),
        rig=cameras.to_json()["rig"],
        imported_from={
            "layout": "character4d-released", "sequence": seq,
            "cameras": "the published CharacterShot template (21 views)",
            "joints": "none (NaN)", "apose": "frame 0 of each view (the released layout has no A-pose renders)",
            "pose_maps": ("view 0: the released front-view pose map; other views black" if data["has_poses"]
                          else "none in the source (black)"),
            "fps": "given to character4d import (not recorded by the layout)",
        },
    )
    joints = np.full((num_frames, len(JOINT_NAMES), 3), np.nan, dtype=np.float32)
    frames = data["frames"]
    return build_sample(key, meta, cameras.to_json(), joints, joints[0], [row[0] for row in frames], frames,
                        data["poses"])
