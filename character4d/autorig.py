"""Auto-rigging geometry (numpy/scipy only): find a standing humanoid's joints from its mesh.

The Blender layer (`character4d.blender.character.autorig`) extracts the vertices and triangles of an
unrigged character, calls `fit_skeleton`, builds the armature from the joints and skins it. Everything
that decides where a joint goes lives here, so it is tested without Blender.

How the joints are found (the limb ends, narrowings and the torso come from the mesh, not from fixed
body proportions):

1. The mesh is turned into a solid voxel volume (`voxelize`, 1/128 of the height): the surface is
   rasterised, closed cavities are filled, and a morphological opening removes thin shells. One-sided
   skirts, capes, loose sleeves and hair sheets vanish; limbs, torso and head are solid and stay.
2. Legs: horizontal sections from the floor up hold two blobs (the feet, then the legs), tracked up
   to the highest layer where they are still apart (the crotch). The ankle is where a foot's forward
   reach ends (the section's depth shrinks to the shin's); the hip joint is over the thigh's section
   just below the crotch, between the crotch and the waist (the torso's narrowest section over the
   pelvis, `_waist`); where the torso shows no waist (a round body, a skirt hiding it) at a height
   above the crotch that scales with the shoulders' height.
3. Arms: beyond the torso, the solid on each side is an arm; its principal axis gives the arm line in
   A- and T-poses alike. Walking from the fingertips inwards, sections perpendicular to the arm stay
   small until they reach far below the arm's axis (the torso's side at the armpit): the shoulder
   joint sits there on the arm's axis, one arm radius below its top edge (where a head or hair resting
   on the shoulder does not raise it). The wrist is the narrowest section behind the palm.
4. Torso: the neck is the shoulder line; the head joint sits at the narrowest layer of the column
   above the shoulders (or on top of the shoulders when the head sits on the body), and no higher
   than just above the chin, read on the face's front edge (hair hides the neck's narrowing, not the
   face); the spine joints are between hips and neck on the torso's sections; the hips are centred
   between the hip joints.
5. Left and right are fitted separately and averaged in mirror image; their disagreement, the limb
   proportions and the order of the spine joints decide whether the fit is trusted (`RigFit.quality`,
   `AutoRigError`).

Where a joint cannot be placed between two geometric landmarks (the knee between hip and ankle, the
elbow between shoulder and wrist, the spine joints between hips and neck, where in a section's depth
a rig puts a joint) it is put at the ratio human rigs use, measured on the rigged characters of
../shared/assets (each constant below names its range).

6. Fingers (`character4d.fingers`): beyond each wrist, the hand's silhouette seen from the palm's
   normal is split into palm and digits; with a thumb and at least three fingers on both hands, their
   chains are placed from each digit's root and tip. Otherwise (mittens, block hands, fingers fused in
   the mesh) there are no finger bones, and `RigFit.fingers` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from character4d.fingers import fit_hand

# Joints compared with a reference rig (`joint_errors`): the anatomical landmarks every humanoid rig has.
MAJOR_JOINTS: tuple[str, ...] = (
    "hips", "spine", "chest", "upperChest", "neck", "head",
    "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
)


class AutoRigError(ValueError):
    """The mesh does not give a trustworthy humanoid fit; the message says what was not found."""


@dataclass(frozen=True)
class Voxels:
    """A boolean occupancy grid.

    Attributes:
        occupied: [X, Y, Z] bool.
        origin: [3] world position of voxel (0, 0, 0)'s centre.
        size: edge length of a voxel (metres).
    """

    occupied: np.ndarray
    origin: np.ndarray
    size: float

    def centres(self, idx: np.ndarray) -> np.ndarray:
        """World positions [N, 3] of voxel indices [N, 3]."""
        return self.origin + np.asarray(idx, dtype=np.float64) * self.size

    def index(self, points: np.ndarray) -> np.ndarray:
        """Voxel indices [N, 3] (int, unclipped) of world points [N, 3]."""
        return np.floor((np.asarray(points) - self.origin) / self.size + 0.5).astype(np.int64)


@dataclass(frozen=True)
class RigFit:
    """The result of `fit_skeleton`.

    Attributes:
        joints: canonical bone -> [3] head position (world), plus ``"<bone>_tail"`` for leaf bones.
        quality: fit quality in [0, 1] (1: the two sides agree exactly; see `fit_skeleton`).
        checks: name -> value of each quality check (symmetry, limb ratios...), for meta.json.
        warnings: human-readable notes on checks that came close to failing.
        fingers: ``"resolved"`` when finger chains were placed on both hands (``joints`` then holds
            `character4d.skeleton.FINGER_BONES`, plus ``"<distal>_tail"`` tips), else
            ``"mitten: <reason>"`` (no finger bones).
    """

    joints: dict[str, np.ndarray]
    quality: float
    checks: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    fingers: str = "mitten: not fitted"

    def to_json(self) -> dict:
        """The meta.json ``autorig`` entry: quality, checks, warnings and fingers."""
        return {"quality": round(float(self.quality), 4),
                "checks": {k: round(float(v), 4) for k, v in sorted(self.checks.items())},
                "warnings": list(self.warnings), "fingers": self.fingers}


# --------------------------------------------------------------------------------------------------
# Volume


def sample_surface(verts: np.ndarray, faces: np.ndarray, spacing: float) -> np.ndarray:
    """Points on every triangle, no further than ``spacing`` apart (plus the vertices).

    Args:
        verts: [N, 3] positions.
        faces: [F, 3] vertex indices of triangles.
        spacing: wanted distance between samples (metres).

    Returns:
        [M, 3] points.
    """
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        return verts
    tri = verts[faces]
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    steps = np.clip(np.ceil(longest / spacing), 1, 256).astype(np.int64)
    out = [verts]
    for n in np.unique(steps):
        if n == 1:
            continue
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        bary = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], axis=1) / n  # [K, 3]
        sel = tri[steps == n]  # [T, 3, 3]
        out.append(np.einsum("kc,tcd->tkd", bary, sel).reshape(-1, 3))
    return np.concatenate(out)


def voxelize(verts: np.ndarray, faces: np.ndarray | None, size: float, open_radius: int = 1) -> Voxels:
    """A solid voxel volume of a mesh, without its thin shells.

    The rasterised surface is closed by one voxel (small gaps between parts), every cavity it encloses
    is filled, and an opening (erosion then dilation by ``open_radius`` voxels) removes structures thinner
    than about 2 * open_radius + 1 voxels: one-sided skirts, capes and hair sheets.

    Args:
        verts: [N, 3] positions.
        faces: [F, 3] triangles, or None for a point cloud (then only vertices are rasterised).
        size: voxel edge (metres).
        open_radius: opening radius in voxels (0 keeps thin shells).

    Returns:
        The volume.
    """
    pts = sample_surface(verts, faces, 0.5 * size) if faces is not None else np.asarray(verts, float)
    pad = 3 + open_radius
    origin = pts.min(axis=0) - pad * size
    shape = np.ceil((pts.max(axis=0) - origin) / size).astype(int) + pad + 1
    grid = np.zeros(shape, dtype=bool)
    idx = np.floor((pts - origin) / size + 0.5).astype(np.int64)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    ball = ndimage.generate_binary_structure(3, 1)
    grid = ndimage.binary_dilation(grid, ball)
    grid = ndimage.binary_fill_holes(grid)
    grid = ndimage.binary_erosion(grid, ball, border_value=0)
    if open_radius > 0:
        st = ndimage.iterate_structure(ball, open_radius)
        grid = ndimage.binary_opening(grid, st)
    return Voxels(grid, origin, float(size))


# --------------------------------------------------------------------------------------------------
# Sections


def _components_2d(uv: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label the 2D connected components of points on a grid of cell ``size``.

    Returns:
        (label per point [N], grid origin [2], label grid).
    """
    lo = uv.min(axis=0)
    ij = np.floor((uv - lo) / size + 0.5).astype(np.int64)
    grid = np.zeros(ij.max(axis=0) + 1, dtype=bool)
    grid[ij[:, 0], ij[:, 1]] = True
    lab, _ = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    return lab[ij[:, 0], ij[:, 1]], lo, lab


def _slices(points: np.ndarray, size: float) -> dict[int, np.ndarray]:
    """Solid voxel centres grouped by horizontal layer index (z / size)."""
    k = np.floor(points[:, 2] / size + 0.5).astype(np.int64)
    order = np.argsort(k, kind="stable")
    ks, starts = np.unique(k[order], return_index=True)
    return {int(kk): points[order[s:e]] for kk, s, e in zip(ks, starts, list(starts[1:]) + [len(order)])}


def _blob_near(section: np.ndarray, size: float, near: np.ndarray) -> np.ndarray | None:
    """The connected blob of a horizontal section [N, 3] that contains (or is closest to) ``near`` [2]."""
    if len(section) == 0:
        return None
    lab, _, _ = _components_2d(section[:, :2], size)
    i = int(np.argmin(np.linalg.norm(section[:, :2] - near, axis=1)))
    return section[lab == lab[i]]


# --------------------------------------------------------------------------------------------------
# Legs

# Hip-joint height above the crotch as a fraction of the shoulders' height (not of the standing height,
# which a big head or hair inflates): 0.115-0.143 on the five rigged characters of ../shared/assets
# (two riggers differ by 0.028 on the same mesh); the mean.
_HIP_ABOVE_CROTCH = 0.127
# Hip-joint height between the crotch and the waist (the narrowest torso section above the pelvis):
# 0.43-0.56 on the rigged characters of ../shared/assets and the project's procedural template; the
# mean. The crotch-to-waist span scales with the pelvis itself, whatever the head, legs or hair are.
_HIP_OF_WAIST = 0.48
# Knee between ankle and hip joint: 0.51-0.55 on the same rigs, 0.52 on the Mixamo template.
_KNEE_RATIO = 0.52
# Ankle height as a fraction of the crotch height when the foot shows no narrowing (boots, paws).
_ANKLE_OF_CROTCH = 0.15
# The ankle joint sits below the top of the foot (where the section has narrowed to the shin's):
# at 0.69-0.86 of that height on ../shared/assets.
_ANKLE_BELOW_TOP = 0.85


def _find_legs(slices: dict[int, np.ndarray], size: float, height: float) -> dict:
    """Leg landmarks from the horizontal sections of the solid.

    Returns:
        dict with "crotch" (z), and per side ("left"/"right") the lists of (z, blob centroid [3],
        blob depth along y, (ymin, ymax), (xmin, xmax)) from the floor to the crotch.

    Raises:
        AutoRigError: when the floor does not show two feet.
    """
    lowest = min(slices)
    feet = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        # The first layers hold the soles; pick the blob on each side of the symmetry plane.
        cand = None
        for k in range(lowest, lowest + max(3, int(0.05 * height / size))):
            sec = slices.get(k)
            if sec is None:
                continue
            side_pts = sec[sec[:, 0] * sign > 0.25 * size]
            if len(side_pts):
                cand = side_pts
                break
        if cand is None:
            raise AutoRigError("auto-rig: cannot find two feet on the floor (expected a standing humanoid)")
        blob = _blob_near(cand, size, np.array([np.median(cand[:, 0]), np.median(cand[:, 1])]))
        feet[side] = blob[:, :2].mean(axis=0)
    track = {"left": [], "right": []}
    prev = dict(feet)
    split_top = None
    top_k = lowest + int(0.65 * height / size)
    for k in range(lowest, top_k):
        sec = slices.get(k)
        if sec is None or len(sec) < 2:
            continue
        lab, _, _ = _components_2d(sec[:, :2], size)
        ids = {}
        for side in ("left", "right"):
            i = int(np.argmin(np.linalg.norm(sec[:, :2] - prev[side], axis=1)))
            ids[side] = lab[i]
        if ids["left"] == ids["right"]:
            continue
        blobs = {s: sec[lab == ids[s]] for s in ids}
        # Both blobs must lie on their own side (a stray part beside one leg is not the other leg).
        if blobs["left"][:, 0].mean() <= 0 or blobs["right"][:, 0].mean() >= 0:
            continue
        split_top = k
        for s, b in blobs.items():
            c = b.mean(axis=0)
            prev[s] = c[:2]
            yr = (float(b[:, 1].min()) - 0.5 * size, float(b[:, 1].max()) + 0.5 * size)
            xr = (float(b[:, 0].min()) - 0.5 * size, float(b[:, 0].max()) + 0.5 * size)
            track[s].append((float(k * size), c, yr[1] - yr[0], yr, xr))
    if split_top is None or len(track["left"]) < 4:
        raise AutoRigError("auto-rig: cannot find two separate legs (expected a standing humanoid, legs apart)")
    return {"crotch": (split_top + 0.5) * size, **track}


def _leg_joints(track: list, crotch: float, height: float, size: float, shoulder_z: float,
                waist_z: float | None = None) -> dict[str, np.ndarray]:
    """Hip, knee, ankle and toes of one leg from its section track (floor to crotch).

    Args:
        track: (z, centroid [3], depth, (ymin, ymax)) per layer from `_find_legs`.
        crotch: crotch height.
        height: the figure's height.
        size: voxel edge.
        shoulder_z: height of the shoulder joints.
        waist_z: height of the waist (`_waist`), None when the torso shows none.
    """
    z = np.array([t[0] for t in track])
    cen = np.array([t[1] for t in track])
    depth = np.array([t[2] for t in track])
    yrange = [t[3] for t in track]
    # Ankle: the lowest layer whose depth has shrunk from the foot's length to about the shin's.
    low = z < 0.5 * crotch
    shin = float(depth[low].min()) if low.any() else float(depth.min())
    foot_len = float(depth[z < z.min() + 0.04 * height].max())
    ankle_z = _ANKLE_OF_CROTCH * crotch
    narrowed = False
    if foot_len > 1.5 * shin:
        # Above the sole's first layers, which can split into heel and toe blobs.
        hit = np.nonzero(low & (depth <= 1.2 * shin) & (z >= z.min() + 0.03 * height))[0]
        if len(hit):
            ankle_z, narrowed = _ANKLE_BELOW_TOP * float(z[hit[0]]), True
    if waist_z is None:
        hip_z = crotch + _HIP_ABOVE_CROTCH * shoulder_z
    else:
        hip_z = crotch + _HIP_OF_WAIST * (waist_z - crotch)
    knee_z = ankle_z + _KNEE_RATIO * (hip_z - ankle_z)

    def joint(zq: float, name: str, fraction: float | None = None) -> np.ndarray:
        i = int(np.argmin(np.abs(z - zq)))
        lo, hi = yrange[i]
        f = _DEPTH_FRACTION[name] if fraction is None else fraction
        return np.array([cen[i][0], lo + f * (hi - lo), zq])

    # Above a foot's heel the ankle sits towards the back of the section; without a narrowing (boots,
    # paws) the section is the whole foot, and the ankle is over its middle.
    ankle = joint(ankle_z, "Foot", None if narrowed else 0.5)
    knee = joint(knee_z, "LowerLeg")
    # Hip joint: the thigh just below the crotch (a few layers down, clear of the merge).
    hip = joint(crotch - 3 * size, "UpperLeg")
    hip[2] = hip_z
    # Sideways, the hip joint is on the thigh's axis carried up to its height: legs standing apart
    # slant inwards, and the section just below the crotch is still outside the joint.
    thigh = (z > 0.5 * crotch) & (z < crotch - 2 * size)
    if thigh.sum() >= 3:
        slope, offset = np.polyfit(z[thigh], cen[thigh, 0], 1)
        hip[0] = slope * hip_z + offset
    return {"UpperLeg": hip, "LowerLeg": knee, "Foot": ankle}


def _waist(slices: dict[int, np.ndarray], size: float, crotch: float, shoulder_z: float,
           half: float, hips_span: float) -> float | None:
    """Height of the waist: the narrowest section of the torso's column over the pelvis.

    Looked for in the lower 70 % of the crotch-to-shoulder span (above it the chest narrows again under
    the arms). Widths count only up to the thighs' outer span just below the crotch: a skirt or a cape
    that survives the volume's opening widens the sections round the pelvis beyond the thighs, and must
    not read as a narrowing above it. The waist is a real narrowing only above the lowest 15 % of the
    span and at least 10 % narrower than the pelvis below it; a round cartoon body (or a skirt hiding
    the waist) has none, and then the result is None.

    Args:
        slices: solid voxel centres per layer (`_slices`).
        size: voxel edge.
        crotch, shoulder_z: heights of the crotch and of the shoulder joints.
        half: the shoulder joints' distance from the symmetry plane (bounds the column's width).
        hips_span: outer width of the two thighs just below the crotch.
    """
    span = shoulder_z - crotch
    rows = []
    for z in np.arange(crotch + size, crotch + 0.7 * span, size):
        blob = _column(slices, size, float(z), 1.3 * half)
        if blob is not None:
            rows.append((float(z), min(float(np.ptp(blob[:, 0])) + size, hips_span)))
    if len(rows) < 4:
        return None
    zs, widths = np.array(rows).T
    i = int(np.argmin(widths))
    below = widths[:i]
    if zs[i] < crotch + 0.15 * span or len(below) == 0 or below.max() < 1.1 * widths[i]:
        return None
    return float(zs[i])


# --------------------------------------------------------------------------------------------------
# Arms

# Elbow between shoulder joint and wrist: 0.47-0.56 on the rigged characters of ../shared/assets.
_ELBOW_RATIO = 0.51
# Stretch of the arm (fractions of the tip-to-armpit distance) whose section centres give the arm line:
# clear of the hand and of the shoulder, where a thick arm flares into the torso.
_ARM_LINE = (0.35, 0.9)
# Near the armpit, a section's top more than this many arm thicknesses above the arm's own top edge
# belongs to something resting on the shoulder (a chibi's head, hair, a collar), not to the arm.
_TOP_RISE = 0.5
# Reach below the arm's axis, in arm thicknesses, that marks the torso's side.
_PIT_REACH = 1.5


def _arm_profile(points: np.ndarray, size: float, sign: float, above: float) -> dict:
    """Walk one arm from the fingertips inwards along its principal axis.

    Args:
        points: [N, 3] solid voxel centres.
        size: voxel edge.
        sign: +1 for the left arm (+X), -1 for the right one.
        above: only points above this height (the crotch) are considered.

    Returns:
        dict: "tip" [3], "dir" [3] outward unit axis, "s" [S] distances from the tip, "centre" [S, 3]
        section centres, "height" [S] section extents perpendicular to the arm in the vertical plane,
        "area" [S] section voxel counts.

    Raises:
        AutoRigError: when no arm sticks out of the torso.
    """
    upper = points[points[:, 2] > above]
    reach = upper[:, 0] * sign
    tipx = float(reach.max())
    distal = upper[reach > 0.55 * tipx]
    if len(distal) < 8:
        raise AutoRigError("auto-rig: cannot find the arms (expected an A- or T-pose humanoid)")
    # Keep the distal blob that holds the fingertips (a long hair lock beside the arm is another blob).
    grid_idx = np.floor((distal - distal.min(0)) / size + 0.5).astype(np.int64)
    g = np.zeros(grid_idx.max(0) + 1, dtype=bool)
    g[tuple(grid_idx.T)] = True
    lab, _ = ndimage.label(g, structure=np.ones((3, 3, 3), dtype=bool))
    ids = lab[tuple(grid_idx.T)]
    distal = distal[ids == ids[int(np.argmax(distal[:, 0] * sign))]]
    centre = distal.mean(axis=0)
    _, _, vt = np.linalg.svd(distal - centre, full_matrices=False)
    d = vt[0] * (1.0 if vt[0][0] * sign > 0 else -1.0)
    if abs(d[0]) < 0.4:  # arms hanging down (or along the body) cannot be told from the torso here
        raise AutoRigError(f"auto-rig: the arms point {np.degrees(np.arccos(min(1.0, abs(d[0])))):.0f} degrees "
                           "away from the sideways axis (expected an A- or T-pose humanoid)")
    tip = centre + d * float(((distal - centre) @ d).max())
    e2 = np.array([0.0, 0.0, 1.0]) - d[2] * d
    e2 /= np.linalg.norm(e2)
    e1 = np.cross(d, e2)
    # Sections are cut to the arm's own front-back depth (measured on the distal arm): long hair or a
    # hood lying behind the shoulders then does not read as the torso's side.
    depth = float(np.percentile(np.abs((distal - centre) @ e1), 95)) + size
    along = (upper - tip) @ d
    stations, centres, heights, areas, uppers, lowers = [], [], [], [], [], []
    s = 0.0
    while True:
        q = tip - s * d
        if q[0] * sign <= 0:
            break
        slab = upper[np.abs(along + s) <= 0.75 * size]
        slab = slab[np.abs((slab - (tip - s * d)) @ e1) <= 1.6 * depth]
        if len(slab):
            uv = np.stack([(slab - q) @ e1, (slab - q) @ e2], axis=1)
            lab2, _, _ = _components_2d(uv, size)
            i = int(np.argmin(np.linalg.norm(uv, axis=1)))
            if np.linalg.norm(uv[i]) < 0.25 * tipx:
                blob = uv[lab2 == lab2[i]]
                stations.append(s)
                c2 = blob.mean(axis=0)
                centres.append(q + c2[0] * e1 + c2[1] * e2)
                heights.append(float(np.ptp(blob[:, 1]) + size))
                areas.append(float(len(blob)))
                uppers.append(float(blob[:, 1].max() + 0.5 * size))
                lowers.append(float(-blob[:, 1].min() + 0.5 * size))
        s += size
    if len(stations) < 6:
        raise AutoRigError("auto-rig: cannot follow the arms into the torso (expected an A- or T-pose humanoid)")
    return {"tip": tip, "dir": d, "s": np.array(stations), "centre": np.array(centres),
            "height": np.array(heights), "area": np.array(areas), "e2": e2, "upper": np.array(uppers),
            "lower": np.array(lowers)}


def _arm_joints(prof: dict, size: float) -> dict[str, np.ndarray]:
    """Shoulder joint, elbow and wrist from an arm profile (see `_arm_profile`)."""
    s, h, area, cen = prof["s"], prof["height"], prof["area"], prof["centre"]
    total = float(s[-1])
    # Baseline arm thickness over the forearm/upper-arm stretch; the armpit is where the section
    # suddenly reaches much further (into the torso's side).
    mid = (s > 0.2 * total) & (s < 0.6 * total)
    base = float(np.median(h[mid])) if mid.any() else float(np.median(h))
    # The armpit: the section reaches far below the arm's axis (into the torso's side). Only downwards:
    # a loose sleeve that survives the opening near the shoulder widens the section both ways.
    jump = np.nonzero((s > 0.3 * total) & (h > 1.9 * base) & (prof["lower"] > _PIT_REACH * base))[0]
    armpit = int(jump[0]) if len(jump) else len(s) - 1
    s_pit = float(s[armpit])
    # The shoulder joint sits just inside the armpit (0.00-0.04 m on the rigged characters), on the
    # arm's centre line, which a straight-line fit over the upper arm and forearm extends to it. Across
    # the arm (up/down), a thick arm's underside flares into the torso near the armpit while its top
    # stays straight: the joint is one arm radius below the top edge there.
    s_sh = s_pit + 0.15 * base
    span = (s > _ARM_LINE[0] * s_pit) & (s < _ARM_LINE[1] * s_pit)
    if span.sum() >= 2:
        coef = np.polyfit(s[span], cen[span], 1)  # [2, 3]
        shoulder = coef[0] * s_sh + coef[1]
    else:
        shoulder = prof["tip"] - prof["dir"] * s_sh
    # Near the armpit, sections whose top rises well above the arm's own (a big head, hair or a collar
    # resting on the shoulder) are not the arm's top edge.
    top_arm = float(np.median(prof["upper"][span])) if span.any() else float(np.median(prof["upper"]))
    near = (s > s_pit - 2 * base) & (s < s_pit) & (prof["upper"] <= top_arm + _TOP_RISE * base)
    if near.any():
        q = prof["tip"] - prof["dir"] * s_sh
        e2 = prof["e2"]
        target = float(np.median(prof["upper"][near])) - 0.5 * base
        shoulder = shoulder + e2 * (target - float((shoulder - q) @ e2))
    # Wrist: the narrowest section between the palm (the widest section near the tips) and the forearm.
    palm_win = np.nonzero((s > 0.05 * s_pit) & (s < 0.25 * s_pit))[0]
    palm = int(palm_win[np.argmax(area[palm_win])]) if len(palm_win) else 0
    win = np.nonzero((s > s[palm]) & (s < 0.42 * s_pit))[0]
    w = int(win[np.argmin(area[win])]) if len(win) else int(np.argmin(np.abs(s - 0.28 * s_pit)))
    wrist = cen[w]
    elbow = shoulder + _ELBOW_RATIO * (wrist - shoulder)
    # Put the elbow on the arm's centre line at that distance.
    se = float((prof["tip"] - elbow) @ prof["dir"])
    k = int(np.argmin(np.abs(s - se)))
    elbow = elbow + (cen[k] - elbow) - prof["dir"] * float((cen[k] - elbow) @ prof["dir"])
    return {"UpperArm": shoulder, "LowerArm": elbow, "Hand": wrist, "tip": prof["tip"], "armpit_s": s_pit}


# --------------------------------------------------------------------------------------------------
# Torso

# Spine joints between the hips and the neck, as fractions of that span: spine 0.19-0.27, chest
# 0.42-0.53, upperChest 0.68-0.78 on the rigged characters of ../shared/assets; their means.
_SPINE_RATIOS = {"spine": 0.25, "chest": 0.47, "upperChest": 0.75}


def _column(slices: dict[int, np.ndarray], size: float, z: float, half_width: float) -> np.ndarray | None:
    """The central blob (around the symmetry plane, within ``half_width`` of it) of the section at ``z``."""
    sec = slices.get(int(np.floor(z / size + 0.5)))
    if sec is None:
        return None
    sec = sec[np.abs(sec[:, 0]) <= half_width]
    if len(sec) == 0:
        return None
    return _blob_near(sec, size, np.array([0.0, float(np.median(sec[:, 1]))]))


# Where a rig puts the torso joints between the front (0) and the back (1) of the body's section:
# 0.53-0.84 (hips), 0.55-0.65 (spine, chest), 0.49-0.64 (upperChest, neck), 0.23-0.65 (head) on the
# rigged characters of ../shared/assets; their means.
_DEPTH_FRACTION = {"hips": 0.66, "spine": 0.58, "chest": 0.6, "upperChest": 0.55, "neck": 0.56, "head": 0.42,
                   "UpperLeg": 0.53, "LowerLeg": 0.4, "Foot": 0.72}


# Torso sections deeper than this fraction of the height are not human (0.10-0.14 on the realistic and
# stylised humans of ../shared/assets, 0.47 on the cartoon bunny).
_DEEP_TORSO = 0.25


# Head joint above the chin, as a fraction of the height: -0.02 to 0.04 on the rigged characters of
# ../shared/assets and the project's procedural template (mean 0.013); a little above the mean, as the
# chin only bounds the estimate from above (for when hair hides the neck).
_HEAD_ABOVE_CHIN = 0.02


def _chin(slices: dict[int, np.ndarray], size: float, neck_z: float, top: float, half: float) -> float | None:
    """Height of the chin: the top of the most recessed stretch of the midline's front edge.

    Searched from the shoulder line up over the lower 35 % of the way to the top (the throat under the
    face), on a narrow band round the symmetry plane (hair at the sides and behind does not count).

    Args:
        slices: solid voxel centres per layer (`_slices`).
        size: voxel edge.
        neck_z: the shoulder line's height.
        top: the top of the figure.
        half: the shoulder joints' distance from the symmetry plane.
    """
    rows = []
    for z in np.arange(neck_z + size, neck_z + 0.35 * (top - neck_z), size):
        blob = _column(slices, size, float(z), 0.25 * half)
        if blob is not None:
            rows.append((float(z), float(blob[:, 1].min())))
    if len(rows) < 3:
        return None
    zs, front = np.array(rows).T
    i = int(np.argmax(front))
    while i + 1 < len(front) and front[i + 1] >= front[i] - 0.5 * size:
        i += 1
    return float(zs[i])


def _torso_joints(slices, size: float, hips_z: float, neck_z: float, top: float, half: float,
                  height: float) -> dict:
    """Hips, spine, chest, upperChest, neck and head on the torso's centre plane.

    Args:
        slices: solid voxel centres per layer (`_slices`).
        size: voxel edge.
        hips_z, neck_z: heights of the hips and of the shoulder line.
        top: the top of the figure.
        half: the shoulder joints' distance from the symmetry plane.
        height: the figure's height.
    """
    out = {}

    def centre_at(z: float, width: float, name: str) -> np.ndarray:
        blob = _column(slices, size, z, width)
        if blob is None:
            return np.array([0.0, 0.0, z])
        lo, hi = float(blob[:, 1].min()) - 0.5 * size, float(blob[:, 1].max()) + 0.5 * size
        return np.array([0.0, lo + _DEPTH_FRACTION[name] * (hi - lo), z])

    out["hips"] = centre_at(hips_z, half, "hips")
    out["neck"] = centre_at(neck_z, 0.6 * half, "neck")
    for name, r in _SPINE_RATIOS.items():
        z = hips_z + r * (neck_z - hips_z)
        out[name] = centre_at(z, half, name)
        blob = _column(slices, size, z, half)
        if blob is not None and np.ptp(blob[:, 1]) > _DEEP_TORSO * height:
            # A torso much deeper than a human's (a round cartoon body): where in it the spine goes is
            # a matter of taste; rigs run it straight from the hips to the neck.
            out[name][1] = out["hips"][1] + r * (out["neck"][1] - out["hips"][1])
    # Head joint: at the skull's base. Above the shoulders (once the arms have left the section), the
    # column narrows to the neck and widens again into the skull; rigs put the head joint near the
    # narrowest layer (from 0.03 m below to 0.05 m above it on ../shared/assets; two rigs of one mesh
    # there differ by 0.09 m). A head sitting straight on the body (no neck) has no such rebound: then
    # the head joint is at the top of the shoulders.
    head_z = None
    profile = []
    for z in np.arange(neck_z + size, top, size):
        blob = _column(slices, size, float(z), 3.0 * half)
        if blob is not None:
            profile.append((float(z), float(np.ptp(blob[:, 0])) + size))
    above = [(z, w) for z, w in profile if w < 3.0 * half]  # the arms have left the section
    if above:
        shoulder_top = above[0][0]
        lower = [(z, w) for z, w in above if z < shoulder_top + 0.5 * (top - shoulder_top)]
        z_n, w_n = min(lower, key=lambda zw: zw[1])
        skull = max(w for z, w in above if z > z_n) if any(z > z_n for z, _ in above) else w_n
        if skull > 1.25 * w_n:
            head_z = z_n
        else:
            head_z = shoulder_top
    if head_z is None:
        head_z = neck_z + 0.3 * (top - neck_z)
    # Hair hanging onto the shoulders widens the column and hides the neck's narrowing, which can only
    # push the estimate up. The chin bounds it from above: on the midline's front edge (the face and
    # throat, which hair does not cover) it is the top of the most recessed stretch over the shoulders.
    chin = _chin(slices, size, neck_z, top, half)
    if chin is not None:
        head_z = min(head_z, chin + _HEAD_ABOVE_CHIN * height)
    out["head"] = centre_at(head_z, half, "head")
    out["head_tail"] = np.array([0.0, out["head"][1], top])
    return out


# --------------------------------------------------------------------------------------------------
# The fit

# Voxels per standing height: 1.4 cm for a 1.8 m character; limbs stay several voxels thick, one-sided
# cloth vanishes under the one-voxel opening.
VOXELS_PER_HEIGHT = 128
# Left and right estimates further apart than this (fraction of the height) make the fit doubtful.
_ASYMMETRY_LIMIT = 0.05


def fit_skeleton(verts: np.ndarray, faces: np.ndarray | None = None) -> RigFit:
    """Fit the canonical humanoid's joints to a standing humanoid mesh (A- or T-pose).

    The mesh must be normalised: feet on z = 0, facing -Y, its left towards +X, roughly centred on the
    Z axis. Joints come from the solid's geometry (see the module docstring); left and right estimates
    are averaged in mirror image, and their disagreement is one of the quality checks.

    Args:
        verts: [N, 3] vertex positions.
        faces: [F, 3] triangle vertex indices (several disconnected parts are fine); None treats the
            vertices as a dense point cloud.

    Returns:
        The fit: joints for every `character4d.skeleton.BODY_BONES` bone (plus leaf tails), the checks
        and warnings, and the quality ``1 - d / limit`` in [0, 1], where d is the largest left/right
        disagreement of a limb joint (fraction of the height) and limit the 0.05 beyond which the fit is
        refused (1: both sides found the same joints); the finger bones too when both hands show a
        thumb and three or more fingers (`RigFit.fingers` says which, or why not).

    Raises:
        AutoRigError: no two feet/legs, no arms sticking out sideways, or a fit too asymmetric or out
            of proportion to trust (the message names what failed).
    """
    verts = np.asarray(verts, dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) < 8:
        raise AutoRigError(f"auto-rig: expected [N >= 8, 3] vertices, got shape {verts.shape}")
    height = float(verts[:, 2].max() - verts[:, 2].min())
    if height <= 0:
        raise AutoRigError("auto-rig: the mesh is flat")
    size = height / VOXELS_PER_HEIGHT
    vox = voxelize(verts, faces, size)
    points = vox.centres(np.argwhere(vox.occupied))
    points[:, 2] -= verts[:, 2].min()
    slices = _slices(points, size)
    top = float(points[:, 2].max())

    legs = _find_legs(slices, size, height)
    crotch = legs["crotch"]
    arm = {s: _arm_joints(_arm_profile(points, size, sign, crotch), size)
           for s, sign in (("left", 1.0), ("right", -1.0))}
    shoulder_z = 0.5 * float(arm["left"]["UpperArm"][2] + arm["right"]["UpperArm"][2])
    half_sh = 0.5 * float(arm["left"]["UpperArm"][0] - arm["right"]["UpperArm"][0])
    # The thighs' outer span a few layers below the crotch (clear of the merge).
    thighs = {s: [t for t in legs[s] if t[0] < crotch - 2 * size] for s in ("left", "right")}
    hips_span = thighs["left"][-1][4][1] - thighs["right"][-1][4][0] if all(thighs.values()) else np.inf
    waist_z = _waist(slices, size, crotch, shoulder_z, half_sh, hips_span)
    leg = {s: _leg_joints(legs[s], crotch, height, size, shoulder_z, waist_z) for s in ("left", "right")}

    joints: dict[str, np.ndarray] = {}
    checks: dict[str, float] = {}
    warnings: list[str] = []
    for part, names in ((leg, ("UpperLeg", "LowerLeg", "Foot")), (arm, ("UpperArm", "LowerArm", "Hand"))):
        for n in names:
            left, right = part["left"][n], part["right"][n]
            mirrored = right * np.array([-1.0, 1.0, 1.0])
            checks[f"asymmetry_{n}"] = float(np.linalg.norm(left - mirrored) / height)
            mean = (left + mirrored) / 2
            joints[f"left{n}"] = mean
            joints[f"right{n}"] = mean * np.array([-1.0, 1.0, 1.0])
    tip = (arm["left"]["tip"] + arm["right"]["tip"] * np.array([-1.0, 1.0, 1.0])) / 2
    shoulder_z = float(joints["leftUpperArm"][2])
    half = float(joints["leftUpperArm"][0])
    hips_z = float(joints["leftUpperLeg"][2]) - 0.008 * height
    joints.update(_torso_joints(slices, size, hips_z, shoulder_z, top, half, height))
    # The pelvis's section varies in depth (0.2-0.7 m) and so does where rigs put the hips in it, while
    # the character is centred on the hips: an error there moves every joint. Rigs keep the hips in
    # line with the spine and limb roots instead: 0.00-0.04 m behind the mean depth of the spine, neck,
    # hip, knee and shoulder joints (0.012 of the height on average, on ../shared/assets).
    line = [joints[n][1] for n in ("spine", "neck", "leftUpperLeg", "leftLowerLeg", "leftUpperArm")]
    joints["hips"][1] = float(np.mean(line)) + 0.012 * height
    for side, sign in (("left", 1.0), ("right", -1.0)):
        ua = joints[f"{side}UpperArm"]
        joints[f"{side}Shoulder"] = np.array([0.15 * ua[0], (ua[1] + joints["neck"][1]) / 2, ua[2] - 0.01 * height])
        joints[f"{side}Hand_tail"] = tip * np.array([sign, 1.0, 1.0])
        # Toes at the ball of the foot: 70 % of the way from the ankle to the toe tip on the floor.
        foot = joints[f"{side}Foot"]
        floor = slices[min(slices)]
        near = floor[np.abs(floor[:, 0] - foot[0]) < 0.06 * height]
        front = float(near[:, 1].min()) if len(near) else foot[1] - 0.08 * height
        joints[f"{side}Toes"] = np.array([foot[0], foot[1] + 0.7 * (front - foot[1]), 0.012 * height])
        joints[f"{side}Toes_tail"] = np.array([foot[0], front, 0.012 * height])

    # Quality: proportions every humanoid rig has, and the agreement of the two sides.
    legs_len = float(joints["leftUpperLeg"][2] - joints["leftFoot"][2])
    arm_len = float(np.linalg.norm(joints["leftHand"] - joints["leftUpperArm"]))
    torso = float(joints["neck"][2] - joints["hips"][2])
    checks["arm_to_torso"] = arm_len / max(torso, 1e-6)
    checks["leg_to_height"] = legs_len / height
    checks["neck_below_top"] = (top - float(joints["neck"][2])) / height
    problems = []
    worst_asym = max(v for k, v in checks.items() if k.startswith("asymmetry_"))
    if worst_asym > _ASYMMETRY_LIMIT:
        problems.append(f"left and right sides disagree by {worst_asym * height * 100:.0f} cm")
    if not 0.5 < checks["arm_to_torso"] < 2.5:
        problems.append(f"arm length {arm_len:.2f} m against a torso of {torso:.2f} m")
    if not 0.08 < checks["leg_to_height"] < 0.7:
        problems.append(f"legs of {legs_len:.2f} m on a {height:.2f} m figure")
    if not 0.08 < checks["neck_below_top"] < 0.6:
        problems.append(f"neck {checks['neck_below_top'] * height:.2f} m below the top")
    if joints["head"][2] <= joints["neck"][2] or joints["neck"][2] <= joints["hips"][2]:
        problems.append("spine joints out of order")
    if problems:
        raise AutoRigError("auto-rig: the fit is doubtful (" + "; ".join(problems) + ")")
    quality = float(np.clip(1.0 - worst_asym / _ASYMMETRY_LIMIT, 0.0, 1.0))
    if quality < 0.5:
        warnings.append(f"left/right disagreement {worst_asym * height * 100:.1f} cm")
    checks["height"] = height
    fingers = _fit_fingers(verts, faces, joints)
    return RigFit(joints, quality, checks, tuple(warnings), fingers)


def _fit_fingers(verts: np.ndarray, faces: np.ndarray | None, joints: dict[str, np.ndarray]) -> str:
    """Add both hands' finger chains to ``joints`` when both are resolved; return `RigFit.fingers`."""
    if faces is None:
        return "mitten: a point cloud has no surface to find fingers on"
    floor = np.array([0.0, 0.0, verts[:, 2].min()])
    hands = {s: fit_hand(verts - floor, faces, joints[f"{s}Hand"], joints[f"{s}Hand_tail"], s)
             for s in ("left", "right")}
    reasons = {s: h.reason.removeprefix("mitten: ") for s, h in hands.items() if not h.resolved}
    if len(set(reasons.values())) == 1 and len(reasons) == 2:
        return f"mitten: {reasons['left']} (both hands)"
    if reasons:
        return "mitten: " + "; ".join(f"{s} hand: {r}" for s, r in reasons.items())
    for h in hands.values():
        joints.update(h.joints)
    return "resolved"


# --------------------------------------------------------------------------------------------------
# Comparison with a reference rig


def apose_joints(heads: dict[str, np.ndarray], arm_deg: float = 40.0) -> dict[str, np.ndarray]:
    """Joint positions after turning the arms into the canonical A-pose, as the renderer does.

    The renderer (`character4d.blender.render.apose_basis`) turns each upper arm and forearm to point
    ``arm_deg`` below horizontal, sideways, and leaves every other bone at rest: the elbow and wrist move
    along the new direction by the rig's own bone lengths.

    Args:
        heads: canonical bone -> [3] rest head (normalised world).
        arm_deg: A-pose arm angle below horizontal.

    Returns:
        canonical bone -> [3] A-pose position (same keys).
    """
    out = {k: np.asarray(v, dtype=np.float64).copy() for k, v in heads.items()}
    a = np.radians(arm_deg)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        names = [f"{side}UpperArm", f"{side}LowerArm", f"{side}Hand"]
        if not all(n in heads for n in names):
            continue
        d = np.array([sign * np.cos(a), 0.0, -np.sin(a)])
        upper = out[names[0]]
        elbow = upper + d * np.linalg.norm(heads[names[1]] - heads[names[0]])
        hand = elbow + d * np.linalg.norm(heads[names[2]] - heads[names[1]])
        out[names[1]], out[names[2]] = elbow, hand
    return out


def joint_errors(fitted: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                 joints: tuple[str, ...] = MAJOR_JOINTS) -> dict[str, float]:
    """Distances (metres) between fitted and reference joints, for the joints both have.

    Args:
        fitted, reference: canonical bone -> [3] position.
        joints: which joints to compare.

    Returns:
        joint -> distance.
    """
    return {j: float(np.linalg.norm(np.asarray(fitted[j]) - np.asarray(reference[j])))
            for j in joints if j in fitted and j in reference}


# --------------------------------------------------------------------------------------------------
# Facing of an unrigged mesh


def facing_turn(verts: np.ndarray, faces: np.ndarray | None = None) -> int:
    """Quarter turns about +Z that make a standing A- or T-pose humanoid face -Y with its arms along X.

    An unrigged file says nothing about where the character faces (a VRM 0.x model exported to OBJ faces
    +Y in Blender, most others -Y). The arms make the figure wider than deep, which leaves two
    candidates half a turn apart; the feet decide between them: toes reach further in front of the
    shins than heels reach behind them.

    Args:
        verts: [N, 3] positions, feet on the lowest z.
        faces: [F, 3] triangles (their surface is sampled, so coarse meshes work), or None.

    Returns:
        k in {0, 1, 2, 3}: rotate by k * 90 degrees about +Z (counter-clockwise seen from above).

    Raises:
        AutoRigError: when the figure is as deep as it is wide (arms not spread) or shows no feet.
    """
    verts = np.asarray(verts, dtype=np.float64)
    height = float(np.ptp(verts[:, 2])) if len(verts) else 0.0
    if height <= 0:
        raise AutoRigError("auto-rig: the mesh is flat")
    if faces is not None:
        verts = sample_surface(verts, faces, height / 100)
    z = verts[:, 2] - verts[:, 2].min()
    best = None
    for k in range(4):
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
        xy = verts[:, :2] @ np.array([[c, s], [-s, c]])  # rotated by k quarter turns
        if np.ptp(xy[:, 0]) <= 1.15 * np.ptp(xy[:, 1]):
            continue
        feet = xy[z < 0.04 * height, 1]
        shins = xy[(z > 0.08 * height) & (z < 0.2 * height), 1]
        if len(feet) == 0 or len(shins) == 0:
            continue
        centre = float(np.median(shins))
        reach = (centre - float(feet.min())) - (float(feet.max()) - centre)  # front minus back
        if best is None or reach > best[0]:
            best = (reach, k)
    if best is None:
        raise AutoRigError("auto-rig: cannot tell where the character faces (expected an A- or T-pose humanoid "
                           "standing on its feet, arms spread)")
    return best[1]
