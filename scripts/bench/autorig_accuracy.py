"""Auto-rig accuracy: strip the rig of rigged characters, auto-rig the bare mesh, compare the joints.

Each character is loaded twice in Blender, as the renderer loads it (`character4d.blender.rigcheck`):
with its own rig, and as a plain OBJ export of its rest-pose mesh, which `load_character` auto-rigs.
Both are put in the canonical A-pose and their joints are compared over
`character4d.autorig.MAJOR_JOINTS`. Prints a table (median, worst and which joint, per character).

    python scripts/bench/autorig_accuracy.py                         # the rigged characters of ../shared/assets
    python scripts/bench/autorig_accuracy.py --check                 # ... and the procedural check characters
    python scripts/bench/autorig_accuracy.py a.glb b.fbx --json out.json

The goal (issue 11): median <= 3 cm and worst <= 6 cm for every character. A second table gives the
fingers: whether they were resolved (or the mitten reason) and, where both rigs have them, the error
over the finger points (`character4d.skeleton.HAND_POINTS`): in the A-pose (the whole arm turned about
the fitted shoulder) and in the rest pose (fingers fitted to the rigged character's own mesh, the same
frame: where the chains sit on the hand; `character4d.blender.rigcheck.rest_finger_errors`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from character4d.blender.rigcheck import (
    CHECK_CHARACTERS,
    build_check_characters,
    errors,
    measure,
    rest_finger_errors,
)
from character4d.skeleton import HAND_POINTS

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
RIGGED = ("human-male", "human-zombie", "human-kenney", "human-sintel", "human-bunny")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("characters", nargs="*", type=Path)
    p.add_argument("--json", type=Path, help="also write the per-joint errors here")
    p.add_argument("--check", action="store_true",
                   help=f"also build and measure the procedural check characters ({', '.join(CHECK_CHARACTERS)})")
    a = p.parse_args(argv)
    paths = a.characters or [ASSETS / "characters" / f"{n}.glb" for n in RIGGED]
    with tempfile.TemporaryDirectory() as tmp:
        if a.check:
            paths = list(paths) + build_check_characters(Path(tmp))
        result = measure(paths)
        rest = rest_finger_errors(paths)
    table = {}
    print(f"{'character':16s} {'median cm':>9s} {'worst cm':>8s}  worst joint      quality")
    for path in paths:
        entry = result[str(path)]
        if "error" in entry:
            print(f"{path.stem:16s} {'-':>9s} {'-':>8s}  {entry['error']}")
            table[path.stem] = {"error": entry["error"]}
            continue
        e = errors(entry)
        worst = max(e, key=e.get)
        vals = np.array(list(e.values()))
        q = (entry["autorig"] or {}).get("quality", float("nan"))
        goal = "meets the goal" if np.median(vals) <= 0.03 and vals.max() <= 0.06 else ""
        print(f"{path.stem:16s} {np.median(vals) * 100:9.1f} {vals.max() * 100:8.1f}  {worst:16s} {q:.2f}  {goal}")
        table[path.stem] = {"median_m": float(np.median(vals)), "worst_m": float(vals.max()), "worst_joint": worst,
                            "quality": q, "errors_m": e}
    print()
    print(f"{'character':16s} {'median cm':>9s} {'worst cm':>8s}  worst point      "
          f"{'rest median':>11s} {'rest worst':>10s}  fingers")
    for path in paths:
        entry = result[str(path)]
        if "error" in entry:
            continue
        ref, fit = entry["reference"], entry["fitted"]
        e = {k: float(np.linalg.norm(np.subtract(fit[k], ref[k]))) for k in HAND_POINTS if k in fit and k in ref}
        fingers = (entry["autorig"] or {}).get("fingers", "-")
        r = rest[str(path)]["errors_m"]
        rest_cols = (f"{np.median(list(r.values())) * 100:11.1f} {max(r.values()) * 100:10.1f}" if r
                     else f"{'-':>11s} {'-':>10s}")
        if e:
            worst = max(e, key=e.get)
            median = float(np.median(list(e.values())))
            print(f"{path.stem:16s} {median * 100:9.1f} {e[worst] * 100:8.1f}  {worst:16s} {rest_cols}  {fingers}")
        else:
            print(f"{path.stem:16s} {'-':>9s} {'-':>8s}  {'-':16s} {rest_cols}  {fingers}")
        table[path.stem]["fingers"] = fingers
        table[path.stem]["finger_errors_m"] = e
        table[path.stem]["finger_rest_errors_m"] = r
    if a.json:
        a.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
