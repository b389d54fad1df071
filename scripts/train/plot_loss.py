"""Plot training loss curves from ``log.jsonl`` files written by ``charactershot train``.

    python scripts/train/plot_loss.py out/train/small-2d/log.jsonl out/train/small-multiview/log.jsonl \
        --labels "stage 1 (2d)" "stage 2 (multiview)" --out docs/training_loss.png
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", help="log.jsonl files, one curve each")
    parser.add_argument("--labels", nargs="+", help="one label per log")
    parser.add_argument("--title", default="training loss (v-prediction MSE)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = args.labels or args.logs
    if len(labels) != len(args.logs):
        print("--labels: expected one label per log", file=sys.stderr)
        return 2
    fig, axes = plt.subplots(1, len(args.logs), figsize=(5 * len(args.logs), 3.6), squeeze=False)
    for ax, path, label in zip(axes[0], args.logs, labels):
        records = [json.loads(line) for line in open(path) if line.strip()]
        steps = [r["step"] for r in records]
        ax.plot(steps, [r["loss"] for r in records], lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss (mean over the last logged steps)")
        rate = sorted(r["samples_per_s"] for r in records)[len(records) // 2]
        ax.set_title(f"{label}\n{len(records) and steps[-1]} steps, median {rate:.0f} samples/s", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
