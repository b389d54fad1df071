"""metrics package hygiene: importing it loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_metrics_is_light():
    code = (
        "import sys, metrics, metrics.weights; "
        "heavy = [m for m in ('torch', 'transformers', 'safetensors', 'scipy') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lazy_exports_resolve():
    import metrics

    assert metrics.FVD.__module__ == "metrics.fvd"
    assert metrics.fetch_weights.__module__ == "metrics.weights"
    assert set(metrics.__all__) <= set(dir(metrics))
