"""Task ``pose``: does the character follow the given pose? (DESIGN.md section 7, v1 addition.)

Predictions, for the protocol's 9 views x 9 frames: ``<pred>/<key>/pose/view{VV}/frame{FFF}.png``,
pose maps in the OpenPose colours of DESIGN.md Appendix A (as AnimaX-style methods generate them
with the video), or ``frame{FFF}.json``, 2D keypoints in OpenPose's JSON format (COCO-18,
``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}``, confidence 0 = absent).

Scoring (``characterbench.pose``): keypoints are decoded per view, triangulated across the views with
the sample's recorded cameras (DLT with outlier rejection; a keypoint hidden in a view is absent
there) and compared with the COCO-18 keypoints of ``joints.npy`` at the protocol's frames: MPJPE
(root-aligned; the root is the mid-point of the hips), raw MPJPE and PA-MPJPE in millimetres, and 2D
PCK over the keypoints the ground truth's own pose map shows. A keypoint the ground truth's maps show
in fewer than 2 views of a frame (a face turned away) is not measured in that frame; a measured keypoint
the prediction lacks is charged ``missing_mm``. Per-joint errors and per-view PCK go into the record's
breakdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from characterbench.protocol import Protocol
from characterbench.tasks.base import Cell, ScoredSample, Task, view_dir

POSE_DIR = "pose"


@dataclass(frozen=True)
class PoseConfig:
    """The pose task's measurement choices (changing one changes the task's version).

    Attributes:
        pck_alpha: PCK radius as a fraction of the larger side of the ground truth's 2D keypoint box
            (0.05: PCK@0.05 of the person box, about 17 px for a full-height character at 512 px).
        outlier_fraction: Reprojection error, as a fraction of the image side, above which a view is
            dropped from a keypoint's triangulation (0.015: 8 px at 512 px, about two keypoint radii).
        missing_mm: Error charged for a keypoint that could not be triangulated (seen in fewer than 2
            consistent views), so leaving keypoints out never lowers an error.
        variant: Colour variant of pose-map predictions (``"openpose"``; ``"charactershot"`` swaps red
            and blue as CharacterShot's released maps do).
    """

    pck_alpha: float = 0.05
    outlier_fraction: float = 0.015
    missing_mm: float = 1000.0
    variant: str = "openpose"


@dataclass(frozen=True)
class PoseTask(Task):
    """The pose task (see the module docstring)."""

    config: PoseConfig = field(default_factory=PoseConfig)

    def cells(self, protocol: Protocol) -> list[Cell]:
        return protocol.cells()

    def grid_axes(self, protocol: Protocol) -> tuple[str, list[int], str, list[int]]:
        return "view", list(protocol.views), "frame", list(protocol.frames)

    def cell_of(self, grid_axes, i: int, j: int) -> Cell:
        return grid_axes[1][i], grid_axes[3][j]

    def read_gt(self, sample: Any, cell: Cell) -> np.ndarray:
        """The keypoints the ground truth's pose map shows (``[18, 2]``, NaN = not drawn), decoded in the
        colour variant the sample was rendered with."""
        from characterbench.pose import decode_pose_map, sample_pose_variant

        return decode_pose_map(sample.pose(*cell), sample_pose_variant(sample))

    def pred_path(self, root, key: str, cell: Cell, suffix: str = ".png") -> Path:
        return Path(root, key, POSE_DIR, f"view{cell[0]:02d}", f"frame{cell[1]:03d}{suffix}")

    def pred_suffixes(self) -> tuple[str, ...]:
        return (".png", ".json")

    def owns(self, first_part: str) -> bool:
        return first_part == POSE_DIR

    def match(self, rel_parts: tuple[str, ...], gt) -> Cell | None:
        if len(rel_parts) != 3 or rel_parts[0] != POSE_DIR:
            return None
        v, name = view_dir(rel_parts[1]), rel_parts[2]
        if v is None or not (name.startswith("frame") and name[5:8].isdigit() and name[8:] in self.pred_suffixes()):
            return None
        f = int(name[5:8])
        return (v, f) if v < gt.num_views and f < gt.num_frames else None

    def check_file(self, path: Path, rel: str, size: tuple[int, int]) -> list:
        from characterbench.predictions import check_image_file

        if path.suffix == ".png":  # the pose map is decoded in full, its keypoints are not looked for
            return check_image_file(path, rel, size)
        return self.check_and_decode(path, rel, size)[0]

    def check_and_decode(self, path: Path, rel: str, size: tuple[int, int]) -> tuple[list, Any]:
        """Problems of a pose map or keypoint file, and its keypoints ``[18, 2]`` when it has none."""
        from characterbench.pose import decode_pose_map, keypoints_from_openpose_json
        from characterbench.predictions import Problem, inspect_image_file

        if path.suffix == ".png":
            problems, image = inspect_image_file(path, rel, size)
            return problems, (None if image is None else decode_pose_map(image, self.config.variant))
        try:
            return [], keypoints_from_openpose_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            return [Problem("unreadable", rel, f"cannot read OpenPose JSON: {exc}")], None

    def read_prediction(self, path: Path) -> np.ndarray:
        """Decoded 2D keypoints ``[18, 2]`` of one prediction file (on the decode threads)."""
        from characterbench.pose import decode_pose_map, keypoints_from_openpose_json
        from characterbench.predictions import read_prediction

        path = Path(path)
        if path.suffix == ".json":
            return keypoints_from_openpose_json(path.read_bytes())
        image = read_prediction(path)
        if image.dtype != np.uint8:
            raise ValueError(f"{path}: expected an 8-bit pose map")
        return decode_pose_map(image, self.config.variant)

    def score_sample(self, pending, protocol: Protocol, suite, metric_names, batch_size: int, device, timer) -> ScoredSample:
        """Triangulate the predicted keypoints and measure them against ``joints.npy``.

        Returns:
            No grids or features; ``values`` (mpjpe, mpjpe_raw, pa_mpjpe, pck) and ``breakdown``
            (``mpjpe_per_joint``, ``pck_per_view``, ``coverage``).
        """
        from characterbench import pose as K

        sample = pending.sample
        views, frames = list(protocol.views), list(protocol.frames)
        nv, nf = len(views), len(frames)
        pred = np.stack([f.result() for f in pending.pred]).reshape(nv, nf, 18, 2).transpose(1, 0, 2, 3)
        shown = np.stack([f.result() for f in pending.gt]).reshape(nv, nf, 18, 2).transpose(1, 0, 2, 3)
        cams = sample.cameras
        viewmats, Ks = np.asarray(cams.viewmats, np.float64)[views], np.asarray(cams.Ks, np.float64)[views]
        side = min(cams.width, cams.height)
        pred3d = K.triangulate_keypoints(pred, viewmats, Ks, self.config.outlier_fraction * side)
        gt3d = K.coco18_from_joints(np.asarray(sample.joints, np.float64)[frames], sample.meta["joint_names"])
        # A keypoint the ground truth's own maps show in fewer than 2 of the views (the face of a
        # character turned away) cannot be triangulated by anyone: it is not measured in that frame.
        seen = np.isfinite(shown).all(-1).sum(axis=1)  # [F, 18] views showing each keypoint
        measured = np.where((seen >= 2)[..., None], gt3d, np.nan)
        errors = K.pose_errors(pred3d, measured, self.config.missing_mm)
        hits = np.zeros((nv, 2), dtype=np.int64)
        for j in range(nf):
            for i in range(nv):
                gt_uv = K.project_points(gt3d[j], viewmats[i], Ks[i])
                hits[i] += K.pck_hits(pred[j, i], gt_uv, np.isfinite(shown[j, i]).all(-1), self.config.pck_alpha)
        values = {
            "mpjpe": errors["mpjpe"], "mpjpe_raw": errors["mpjpe_raw"], "pa_mpjpe": errors["pa_mpjpe"],
            "pck": float(hits[:, 0].sum() / max(hits[:, 1].sum(), 1)),
        }
        breakdown = {
            "mpjpe_per_joint": {n: float(e) for n, e in zip(K.COCO18_NAMES, errors["per_joint"]) if np.isfinite(e)},
            "pck_per_view": {str(v): float(h[0] / h[1]) for v, h in zip(views, hits) if h[1]},
            "coverage": {"triangulated": errors["coverage"]},
        }
        return ScoredSample({}, {}, {m: values[m] for m in metric_names}, breakdown)


POSE = PoseTask(
    name="pose",
    version="1",
    description="pose fidelity: pose maps or 2D keypoints triangulated across the 9 views, against joints.npy",
    metrics=("mpjpe", "mpjpe_raw", "pa_mpjpe", "pck"),
    main_metric="mpjpe",
    layout="<pred>/<sample_key>/pose/view{VV}/frame{FFF}.png (OpenPose colours) or .json (OpenPose keypoints), the 9 x 9 matrix",
    subfolder=POSE_DIR,
)
