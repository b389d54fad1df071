"""Ground truth beside predictions, for a quick look: one row per sample, (ground truth | prediction) per view.

    python scripts/train/sample_grid.py --gt out/board-gt --pred out/preds-small --keys ada__dance,cleo__walk \
        --views 0,7,14 --frame 12 --out docs/training_samples.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _as_scored(rgba: np.ndarray) -> np.ndarray:
    """A ground-truth RGBA frame composited as the benchmark scores it (uint8 [H, W, 3])."""
    from characterbench.protocol import DEFAULT_PROTOCOL, composite, rgba_to_tensor

    rgb = composite(rgba_to_tensor(rgba), DEFAULT_PROTOCOL.background)
    return (rgb.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from character4d.format import open_samples

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", required=True)
    p.add_argument("--pred", required=True, help="prediction folder: <key>/view{VV}/frame{FFF}.png")
    p.add_argument("--keys", required=True)
    p.add_argument("--views", default="0,7,14")
    p.add_argument("--frame", type=int, default=12)
    p.add_argument("--cell", type=int, default=212, help="pixels per image")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    keys, views = a.keys.split(","), [int(v) for v in a.views.split(",")]
    samples = {s.key: s for s in open_samples(a.gt, validate=False) if s.key in keys}
    if missing := [k for k in keys if k not in samples]:
        print(f"--keys: not in {a.gt}: {missing}", file=sys.stderr)
        return 1
    gap, size = 4, a.cell
    grid = Image.new("RGB", (len(views) * (2 * size + gap) - gap, len(keys) * (size + gap) - gap), "white")
    for row, key in enumerate(keys):
        for col, v in enumerate(views):
            pred_file = Path(a.pred) / key / f"view{v:02d}" / f"frame{a.frame:03d}.png"
            if not pred_file.is_file():
                print(f"no prediction {pred_file}", file=sys.stderr)
                return 1
            gt = Image.fromarray(_as_scored(samples[key].frame(v, a.frame)))
            pred = Image.open(pred_file).convert("RGB")
            x, y = col * (2 * size + gap), row * (size + gap)
            grid.paste(gt.resize((size, size), Image.BICUBIC), (x, y))
            grid.paste(pred.resize((size, size), Image.BICUBIC), (x + size, y))
    grid.save(a.out, quality=90)
    print(f"wrote {a.out} ({grid.size[0]} x {grid.size[1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
