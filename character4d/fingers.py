"""Finger chains from a hand's geometry (numpy/scipy only), for `character4d.autorig.fit_skeleton`.

Beyond the wrist joint the auto-rigger has found, the hand's surface is sampled finely and seen from
the palm's normal (a silhouette image in the hand's own frame: along the hand, across the palm). A
morphological opening with a disc about half the palm's inscribed radius keeps the palm and removes
everything thinner: what it removes and reaches away from the wrist are the digits. Each digit gives,
from the geometry alone, its root (where it leaves the palm: the webbing) and its tip (its far end),
and between them its medial line (the centres of its surface samples, which lie round the finger's
axis). The thumb is the digit that leaves the palm nearest the wrist; the others are index, middle,
ring and little in order across the palm from the thumb's side.

Fingers are *resolved* when a thumb and at least three fingers are found (a cartoon hand of three
fingers gets index, middle and ring). Otherwise -- a mitten, a fist, a low-poly block hand with a
thumb, fingers fused in the mesh -- no finger bones are placed, and the reason says what was seen.

Where a joint is not a geometric landmark it is put at a ratio measured on the rigged characters of
../shared/assets whose hands have separate fingers (human-male, human-sintel): the
knuckle lies inside the palm, behind the webbing, and the finger's inner joints split the medial line
from the knuckle to the tip (each constant names its range). Those ratios are measured on the
same characters whose stripped rigs the tests compare with; only the roots and tips are independent
of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FINGER_ORDER: tuple[str, ...] = ("Index", "Middle", "Ring", "Little")

# The silhouette's cell, as a fraction of the hand's length (wrist to the arm's tip): 2.2 mm on
# human-male's 0.18 m hand, 3.3 mm on human-sintel's 0.26 m (its wrist joint sits further back), so
# that gaps of a few millimetres between fingers held together stay open.
_CELL_OF_HAND = 1 / 80
# Opening radius as a fraction of the palm's inscribed radius: on human-male the disc is 5.4 cm across,
# much wider than a finger (1.6-2.0 cm), and fits inside the palm (about 9 cm square).
_OPEN_OF_PALM = 0.55
# A digit is at least this long (root to tip) as a fraction of the hand's length, and at least this
# many times as long as it is wide: shorter bits are the palm's corners rounded off by the opening. (A
# thumb lying along the palm's side is the least elongated digit: 1.5 times on human-sintel.)
_MIN_DIGIT_LENGTH = 0.15
_MIN_ELONGATION = 1.3
# A digit's far end lies at least this fraction of the hand's length beyond the wrist: nearer bits are
# the corners of the wrist's cut or a cuff. (A thumb reaches 0.47-0.64 on the rigged characters, 0.3
# when the wrist is found 4 cm too far out, as on an A-pose box figure.)
_MIN_TIP_ALONG = 0.2
# The thumb leaves the palm nearer the wrist than any finger, by at least this fraction of the
# fingers' median length: 0.67-0.80 on human-male and human-sintel, whose four fingers leave the palm
# within 0.13-0.25 of each other (a little finger set back is not a thumb).
_THUMB_SET_BACK = 0.3
# Knuckle (proximal head) behind the webbing, along the finger's axis, as a fraction of the
# root-to-tip length: 0.15-0.36 on the rigged characters of ../shared/assets whose fingers are resolved
# (human-male, human-sintel; the ring and little fingers leave the palm further out than their
# knuckles); the mean.
_KNUCKLE_BEHIND = 0.24
# Thumb: its proximal head 0.04-0.11 of root-to-tip *beyond* the webbing (the thumb's web reaches
# past its first joint); its metacarpal head on the thumb's axis carried back into the palm, 0.43-0.56
# of root-to-tip behind the proximal head (and within 1 cm of that axis). Means.
_THUMB_PROXIMAL_BEHIND = -0.07
_THUMB_METACARPAL_BEHIND = 0.5
# Inner joints as fractions of the medial line from the knuckle to the tip: intermediate 0.30-0.43,
# distal 0.69-0.79 (fingers); the thumb's distal head 0.57-0.60 from its proximal head. Means.
_INTERMEDIATE_AT = 0.38
_DISTAL_AT = 0.72
_THUMB_DISTAL_AT = 0.58


@dataclass(frozen=True)
class HandFit:
    """Fingers of one hand.

    Attributes:
        joints: canonical finger bone -> [3] head, plus ``"<distal bone>_tail"`` (the tip); empty when
            the fingers are not resolved.
        reason: "resolved" or "mitten: <what was seen>".
        digits: how many separate digits were found (the thumb included).
    """

    joints: dict[str, np.ndarray]
    reason: str
    digits: int

    @property
    def resolved(self) -> bool:
        """Whether the finger chains were placed."""
        return self.reason == "resolved"


def _sample(verts: np.ndarray, faces: np.ndarray, spacing: float) -> np.ndarray:
    # Imported here: character4d.autorig imports this module at its top.
    from character4d.autorig import sample_surface

    return sample_surface(verts, faces, spacing)


def _hand_points(verts, faces, wrist, tip, spacing) -> np.ndarray:
    """Surface samples beyond the wrist plane, in the connected part that holds the arm's tip."""
    d = tip - wrist
    length = float(np.linalg.norm(d))
    d = d / length
    reach = 1.6 * length
    c = verts[faces].mean(axis=1)
    near = (((c - wrist) @ d) > -spacing * 4) & (np.linalg.norm(c - wrist, axis=1) < reach + spacing * 4)
    if not near.any():
        return np.zeros((0, 3))
    pts = _sample(verts, faces[near], spacing)
    pts = pts[(((pts - wrist) @ d) > 0) & (np.linalg.norm(pts - wrist, axis=1) < reach)]
    if len(pts) < 20:
        return pts
    # Only the part connected to the tip (a hair lock or the hip beside an A-pose hand is another one).
    cell = 2 * spacing
    idx = np.floor((pts - pts.min(0)) / cell).astype(np.int64)
    grid = np.zeros(idx.max(0) + 1, dtype=bool)
    grid[tuple(idx.T)] = True
    grid = ndimage.binary_dilation(grid)
    lab, _ = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
    ids = lab[tuple(idx.T)]
    far = int(np.argmax((pts - wrist) @ d))
    return pts[ids == ids[far]]


def _palm_width_axis(rel: np.ndarray, along: np.ndarray) -> np.ndarray:
    """The direction across the palm, perpendicular to the hand's axis and to the palm's normal.

    The normal is the direction (perpendicular to the axis) in which the hand is thinnest, measured
    between the 10th and 90th percentiles so that a thumb sticking out of the palm's plane (a tenth of
    the hand's surface) does not count. A silhouette seen at a slant would smear each finger's
    thickness over the gaps beside it.

    Args:
        rel: [N, 3] hand points relative to the wrist.
        along: [3] unit hand axis.

    Returns:
        [3] unit vector perpendicular to ``along``.
    """
    e1 = np.cross(along, [0.0, 0.0, 1.0]) if abs(along[2]) < 0.9 else np.cross(along, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(along, e1)
    a = np.radians(np.arange(0.0, 180.0, 2.5))
    normals = np.cos(a)[:, None] * e1 + np.sin(a)[:, None] * e2  # [A, 3]
    lo, hi = np.percentile(rel @ normals.T, [10, 90], axis=0)
    normal = normals[int(np.argmin(hi - lo))]
    return np.cross(normal, along)


def fit_hand(verts: np.ndarray, faces: np.ndarray, wrist: np.ndarray, tip: np.ndarray, side: str) -> HandFit:
    """Find one hand's digits and place its finger chains.

    Args:
        verts: [N, 3] mesh vertices (normalised world, as `fit_skeleton` gets them).
        faces: [F, 3] triangles.
        wrist: [3] the hand joint.
        tip: [3] the arm's far end (the fingertips' extreme along the arm).
        side: "left" or "right" (the bone names' prefix).

    Returns:
        The hand's fit; ``joints`` holds the canonical finger bones (`character4d.skeleton.FINGER_BONES`
        of this side) that were placed: all three of the thumb's and of each finger found.
    """
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    wrist, tip = np.asarray(wrist, float), np.asarray(tip, float)
    length = float(np.linalg.norm(tip - wrist))
    if length <= 0:
        return HandFit({}, "mitten: the hand has no length beyond the wrist", 0)
    cell = _CELL_OF_HAND * length
    pts = _hand_points(verts, faces, wrist, tip, 0.5 * cell)
    if len(pts) < 50:
        return HandFit({}, f"mitten: the hand's surface gives only {len(pts)} samples", 0)
    along = (tip - wrist) / length
    rel = pts - wrist
    width = _palm_width_axis(rel[::4], along)
    uv = np.stack([rel @ along, rel @ width], axis=1)
    lo = uv.min(0) - 2 * cell
    ij = np.floor((uv - lo) / cell).astype(np.int64)
    img = np.zeros(ij.max(0) + 3, dtype=bool)
    img[ij[:, 0], ij[:, 1]] = True
    img = ndimage.binary_fill_holes(img)
    dist = ndimage.distance_transform_edt(img)
    # The palm's inscribed radius, measured clear of the wrist cut (which makes the image's first rows).
    palm_r = float(dist[int(0.1 * length / cell):].max()) if img.shape[0] > int(0.1 * length / cell) else 0.0
    if palm_r < 2:
        return HandFit({}, "mitten: the hand is too thin to tell its palm from its fingers", 0)
    radius = max(1, int(round(_OPEN_OF_PALM * palm_r)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = xx ** 2 + yy ** 2 <= radius ** 2
    palm = ndimage.binary_opening(img, structure=disc)
    rest = img & ~palm
    rest = ndimage.binary_opening(rest)  # one-cell slivers along the palm's edge
    lab, n = ndimage.label(rest, structure=np.ones((3, 3), dtype=bool))
    touch = ndimage.binary_dilation(palm, iterations=2)
    digits = []
    for k in range(1, n + 1):
        comp = lab == k
        root_px = np.argwhere(comp & touch)
        if len(root_px) == 0:
            continue
        px = np.argwhere(comp)
        root2 = root_px.mean(0)
        far = px[int(np.argmax(np.linalg.norm(px - root2, axis=1)))]
        span = float(np.linalg.norm(far - root2)) * cell
        u2 = (far - root2) / max(np.linalg.norm(far - root2), 1e-9)
        across = float(np.ptp(px @ np.array([-u2[1], u2[0]]))) * cell + cell
        if span < _MIN_DIGIT_LENGTH * length or span < _MIN_ELONGATION * across:
            continue
        if far[0] * cell + lo[0] < _MIN_TIP_ALONG * length:  # a stub by the wrist (a cuff, the cut)
            continue
        digits.append(_digit(pts, ij, comp, root2, u2, cell, lo, wrist, along))
    fit = _assign(digits, side)
    return HandFit(fit[0], fit[1], len(digits))


def _digit(pts, ij, comp, root2, u2, cell, lo, wrist, along) -> dict:
    """Medial line of one digit: centres of its surface samples in bins from its root to its tip."""
    mine = comp[ij[:, 0], ij[:, 1]]
    p = pts[mine]
    t = ((ij[mine] - root2) @ u2) * cell
    top = float(t.max())
    nb = max(4, int(np.ceil(top / (2 * cell))))
    edges = np.linspace(0.0, top, nb + 1)
    line = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (t >= a) & (t <= b)
        if sel.any():
            line.append(p[sel].mean(0))
    line = np.array(line)
    end = p[t >= top - 1.5 * cell].mean(0)
    # The digit's axis: a straight line through its medial points beyond the first bin (which can hold
    # a bit of the palm's corner that the opening rounded off). The root is on that axis, level with
    # where the digit leaves the palm (t = 0).
    body = line[1:] if len(line) > 2 else line
    c = body.mean(0)
    axis = end - c if len(body) < 2 else np.linalg.svd(body - c, full_matrices=False)[2][0]
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    if axis @ (end - c) < 0:
        axis = -axis
    start = line[0] - (line[1] - line[0]) * 0.5 if len(line) > 1 else line[0]
    root = c + ((start - c) @ axis) * axis
    line = np.vstack([root, body, end])
    centre2 = (root2 + u2 * 0.5 * top / cell) * cell + lo
    return {"line": line, "root": root, "tip": end, "axis": axis, "root_along": float((root - wrist) @ along),
            "across": float(centre2[1]), "length": float(np.linalg.norm(end - root))}


def _along_line(line: np.ndarray, start: np.ndarray, f: float) -> np.ndarray:
    """The point at fraction ``f`` of the arc length of the polyline ``start`` -> ``line``."""
    pts = np.vstack([start, line])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = f * cum[-1]
    i = int(np.clip(np.searchsorted(cum, s) - 1, 0, len(seg) - 1))
    w = 0.0 if seg[i] <= 0 else (s - cum[i]) / seg[i]
    return pts[i] + w * (pts[i + 1] - pts[i])


def _assign(digits: list[dict], side: str) -> tuple[dict, str]:
    """Name the digits (thumb, then fingers across the palm) and place their joints."""
    if len(digits) < 4:
        what = {0: "no separate digits", 1: "one digit"}.get(len(digits), f"{len(digits)} digits")
        return {}, f"mitten: {what} beyond the palm (needs a thumb and at least three fingers)"
    thumb = min(digits, key=lambda g: g["root_along"])
    fingers = [g for g in digits if g is not thumb]
    others = sorted(g["root_along"] for g in fingers)
    # The thumb leaves the palm clearly nearer the wrist than the fingers do, and in front of them (a
    # standing humanoid's rest pose has its thumbs forward, towards -Y).
    if others[0] - thumb["root_along"] < _THUMB_SET_BACK * np.median([g["length"] for g in fingers]):
        return {}, f"mitten: {len(digits)} digits, none set back towards the wrist like a thumb"
    if thumb["tip"][1] > np.mean([g["root"][1] for g in fingers]):
        return {}, f"mitten: {len(digits)} digits, the one nearest the wrist is behind the fingers (no thumb)"
    fingers.sort(key=lambda g: abs(g["across"] - thumb["across"]))
    if len(fingers) > 4:
        return {}, f"mitten: {len(digits)} digits beyond the palm (more than five)"
    out: dict[str, np.ndarray] = {}
    for name, g in zip(FINGER_ORDER, fingers):
        knuckle = g["root"] - _KNUCKLE_BEHIND * g["length"] * g["axis"]
        out[f"{side}{name}Proximal"] = knuckle
        out[f"{side}{name}Intermediate"] = _along_line(g["line"], knuckle, _INTERMEDIATE_AT)
        out[f"{side}{name}Distal"] = _along_line(g["line"], knuckle, _DISTAL_AT)
        out[f"{side}{name}Distal_tail"] = g["tip"]
    proximal = thumb["root"] - _THUMB_PROXIMAL_BEHIND * thumb["length"] * thumb["axis"]
    out[f"{side}ThumbMetacarpal"] = proximal - _THUMB_METACARPAL_BEHIND * thumb["length"] * thumb["axis"]
    out[f"{side}ThumbProximal"] = proximal
    out[f"{side}ThumbDistal"] = _along_line(thumb["line"], proximal, _THUMB_DISTAL_AT)
    out[f"{side}ThumbDistal_tail"] = thumb["tip"]
    return out, "resolved"
