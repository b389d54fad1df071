"""A bpy-free stand-in for ``character4d.blender.worker`` that speaks its job-file protocol.

Used with ``CHARACTER4D_WORKER_MODULE=tests.character4d.fake_worker`` to test what happens around a
worker (crashes, retries, Ray fan-out) in seconds. Behaviour per job, from files in
``$C4D_FAKE_WORKER_DIR``: ``kill-<key>`` is removed and the worker SIGKILLs itself (the first attempt
dies, the next succeeds); ``always-kill-<key>`` kills every attempt; ``bad-<key>`` reports a bad
input. Every call leaves ``call-<key>-<pid>``. Otherwise it writes a tiny valid sample.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from tests.character4d.fake_sample import make_fake_sample


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    key, out = job["key"], Path(job["out"])
    control = Path(os.environ["C4D_FAKE_WORKER_DIR"])
    (control / f"call-{key}-{os.getpid()}").write_text(json.dumps([job["character"], job["motion"]]))
    if (control / f"kill-{key}").exists():
        (control / f"kill-{key}").unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    if (control / f"always-kill-{key}").exists():
        os.kill(os.getpid(), signal.SIGKILL)
    if (control / f"bad-{key}").exists():
        print("RESULT " + json.dumps({"ok": False, "error": "AssetError", "message": f"{key}: not humanoid",
                                      "bad_input": True}), flush=True)
        return 3
    cfg = job["config"]
    sample = make_fake_sample(key, views=cfg["num_views"], frames=cfg["num_frames"], size=cfg["resolution"],
                              depth=False, mask=False)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sample.files.items():
        (out / name).write_bytes(data)
    print("PROGRESS " + json.dumps([1, 1]), flush=True)
    print("RESULT " + json.dumps({"ok": True, "seconds": 0.0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
