"""Subprocess entry point that renders one job: ``python -m character4d.blender.worker JOB.json``.

Each job runs in its own process so that a file that crashes Blender fails only that job, memory is
returned after every sample, and a killed run leaves nothing half-initialised behind. Blender's own
chatter goes to ``<key>.log`` beside the output folder; stdout carries only ``PROGRESS done total`` lines and
the final ``RESULT <json>`` line that the parent reads.

Job file: ``{"character": path, "motion": path, "key": str, "config": RenderConfig.to_json(),
"out": folder}``. Exit status: 0 on success, 3 for a bad input (AssetError / unmappable skeleton),
1 for anything else.

``python -m character4d.blender.worker build-character SPEC_JSON OUT.glb`` builds one procedural
character (`character4d.default_data.CharacterSpec.to_json`) into a GLB: `character4d.default_data`
runs it in a child process so that it never imports Blender itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def redirect_blender_output(log_path: Path):
    """Send fd 1 and 2 (where Blender's C code prints) to a log; return a writer for our own stdout.

    Public: every Blender worker of the toolkit (renders here, the exports of ``reference_model.export``)
    keeps its own protocol on the returned channel and Blender's chatter in the log.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    return os.fdopen(saved, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "build-character":
        return build_character(argv[1:])
    if len(argv) != 1:
        print("usage: python -m character4d.blender.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    channel = redirect_blender_output(out.parent / f"{out.name}.log")

    def report(kind: str, payload) -> None:
        channel.write(f"{kind} {json.dumps(payload)}\n")
        channel.flush()

    try:
        from character4d.blender.render import render_sample
        from character4d.config import RenderConfig

        cfg = RenderConfig.from_json(job["config"])
        start = time.perf_counter()
        render_sample(job["character"], job["motion"], job["key"], cfg, out,
                             progress=lambda d, t: report("PROGRESS", [d, t]))
        report("RESULT", {"ok": True, "seconds": time.perf_counter() - start})
        return 0
    except Exception as exc:  # reported to the parent, which records it in the manifest
        bad_input = type(exc).__name__ in ("AssetError", "UnmappableSkeletonError")
        traceback.print_exc()  # into the log
        report("RESULT", {"ok": False, "error": type(exc).__name__, "message": str(exc), "bad_input": bad_input,
                          "traceback": "" if bad_input else traceback.format_exc()[-4000:]})
        return 3 if bad_input else 1


def build_character(argv: list[str]) -> int:
    """``build-character SPEC_JSON OUT.glb``: one procedural character into a GLB."""
    if len(argv) != 2:
        print("usage: python -m character4d.blender.worker build-character SPEC_JSON OUT.glb", file=sys.stderr)
        return 2
    from character4d.blender.procedural import build_character_file
    from character4d.default_data import CharacterSpec

    build_character_file(CharacterSpec.from_json(json.loads(argv[0])), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
