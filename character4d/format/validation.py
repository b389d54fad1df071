"""Validation of a sample against the contract: every problem is collected before anything is raised."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from character4d.format.codecs import _DEPTH_READ_MODES, stack_frame_map
from character4d.format.meta import check_meta
from character4d.format.names import (
    _APOSE,
    _FRAME_KIND_MODES,
    _LAYOUT_HINT,
    _MOTION,
    _OPTIONAL_KINDS,
    _TOP_LEVEL_FIELDS,
    APOSE_JOINTS,
    CAMERAS,
    JOINTS,
    META,
    SampleFormatError,
    _Field,
    _frame_field,
    _parse_field,
    apose_name,
)

if TYPE_CHECKING:
    from character4d.format.sample import Sample

class _SampleChecker:
    """Collects every problem of one sample (helper of Sample.validate)."""

    def __init__(self, sample: Sample, decode: bool = False) -> None:
        self.sample = sample
        self.decode = decode
        self.found: list[str] = []

    def problems(self) -> list[str]:
        fields = self._parse_names()
        missing_top = [name for name in _TOP_LEVEL_FIELDS if name not in self.sample.files]
        if missing_top:
            self.found.append(f"missing required fields: {', '.join(missing_top)}")
        meta = self._check_meta()
        if meta is not None:
            num_views, num_frames, resolution, num_joints = meta
            self._check_arrays(num_frames, num_joints)
            self._check_cameras(num_views, resolution)
            self._check_completeness(fields, num_views, num_frames)
            self._check_images(fields, resolution, num_frames)
        return self.found

    def _parse_names(self) -> dict[str, _Field]:
        fields = {}
        for name in sorted(self.sample.files):
            parsed = _parse_field(name)
            if parsed is None:
                self.found.append(f"unknown field {name!r} ({_LAYOUT_HINT})")
            else:
                fields[name] = parsed
        return fields

    def _check_meta(self) -> tuple[int, int, int, int] | None:
        if META not in self.sample.files:
            return None
        try:
            meta = self.sample.meta
        except SampleFormatError as exc:
            self.found.append(str(exc))
            return None
        problems, counts = check_meta(meta, self.sample.key)
        self.found.extend(problems)
        return counts

    def _check_arrays(self, num_frames: int, num_joints: int) -> None:
        for name, shape in ((JOINTS, (num_frames, num_joints, 3)), (APOSE_JOINTS, (num_joints, 3))):
            if name not in self.sample.files:
                continue
            try:
                array = self.sample._npy(name)
            except SampleFormatError as exc:
                self.found.append(str(exc))
                continue
            if array.shape != shape or array.dtype != np.float32:
                self.found.append(
                    f"{name}: expected float32 {list(shape)} (F, J from meta.json), "
                    f"got {array.dtype} {list(array.shape)}"
                )

    def _check_cameras(self, num_views: int, resolution: int) -> None:
        if CAMERAS not in self.sample.files:
            return
        try:
            cameras = self.sample.cameras
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.found.append(f"cameras.json cannot be decoded ({type(exc).__name__}: {exc})")
            return
        count = len(cameras.viewmats)
        if count != num_views:
            self.found.append(f"cameras.json: expected {num_views} cameras (num_views), got {count}")
        if (cameras.width, cameras.height) != (resolution, resolution):
            self.found.append(
                f"cameras.json: expected {resolution}x{resolution} (resolution), got {cameras.width}x{cameras.height}"
            )

    def _check_completeness(self, fields: dict[str, _Field], num_views: int, num_frames: int) -> None:
        for name, parsed in fields.items():
            out_of_range = (parsed.view is not None and parsed.view >= num_views) or (
                parsed.frame is not None and parsed.frame >= num_frames
            )
            if out_of_range:
                self.found.append(f"field {name!r} is outside {num_views} views x {num_frames} frames")
        # Each image slot (kind, view, frame) is held once: as PNG, as WebP, or by its view's animated WebP.
        slots: dict[tuple, list[str]] = {}
        for name, parsed in fields.items():
            if parsed.view is None:
                continue
            frames = range(num_frames) if parsed.stack else [parsed.frame]
            for f in frames:
                slots.setdefault((parsed.kind, parsed.view, f), []).append(name)
        doubled = sorted(", ".join(names) for names in slots.values() if len(names) > 1)
        if doubled:
            self.found.append(f"{len(doubled)} image(s) stored twice: {'; '.join(sorted(set(doubled))[:4])}")
        expected = {_APOSE: [((_APOSE, v, None), apose_name(v)) for v in range(num_views)]}
        kinds = [_MOTION, "pose"] + [k for k in _OPTIONAL_KINDS if any(p.kind == k for p in fields.values())]
        for kind in kinds:
            prefix = None if kind == _MOTION else kind
            expected[kind] = [((kind, v, f), _frame_field(prefix, v, f)) for v in range(num_views)
                              for f in range(num_frames)]
        for kind, wanted in expected.items():
            missing = [name for slot, name in wanted if slot not in slots]
            if missing:
                shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
                self.found.append(f"missing {len(missing)} of {len(wanted)} {kind!r} fields: {shown}")

    def _check_images(self, fields: dict[str, _Field], resolution: int, num_frames: int) -> None:
        wrong = []
        for name, parsed in fields.items():
            if parsed.view is None:
                continue
            colour = parsed.kind in (_APOSE, _MOTION, "pose")
            if parsed.ext == "webp":
                fmt_wanted, modes = "WEBP", ("RGBA", "RGB")
            else:
                fmt_wanted = "PNG"
                modes = ("RGBA",) if parsed.kind in (_APOSE, _MOTION) else (_FRAME_KIND_MODES[parsed.kind],)
                modes = _DEPTH_READ_MODES if parsed.kind == "depth" else modes
            try:
                with Image.open(io.BytesIO(self.sample.files[name])) as image:
                    size, mode, fmt = image.size, image.mode, image.format
                    if parsed.stack:
                        count = len(stack_frame_map(self.sample.files[name], num_frames))
                    else:
                        count = getattr(image, "n_frames", 1)
                    if self.decode:
                        for f in range(count):  # the whole pixel stream: a truncated file fails here
                            image.seek(f)
                            image.load()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                wrong.append(f"{name}: not a readable image ({exc})")
                continue
            wrong_kind = fmt != fmt_wanted or mode not in modes or not (colour or fmt == "PNG")
            if wrong_kind or size != (resolution, resolution):
                got = f"{size[0]}x{size[1]} {fmt} {mode}"
                wrong.append(f"{name}: expected {resolution}x{resolution} {fmt_wanted} {modes[0]}, got {got}")
            elif count != (num_frames if parsed.stack else 1):
                wrong.append(f"{name}: expected {num_frames if parsed.stack else 1} frame(s), got {count}")
        if wrong:
            shown = "; ".join(wrong[:6]) + ("; ..." if len(wrong) > 6 else "")
            self.found.append(f"{len(wrong)} image(s) with the wrong format: {shown}")


