#!/usr/bin/env bash
# One GPU-machine run of the 4D Gaussian fit: install gsplat (pure-Python wheel; compiles its CUDA code on
# first use), run the gpu-marked gs4d tests (gsplat vs the torch rasteriser, a default fit), then the fits of
# scripts/gs4d_leaderboard.py within a deadline, the benchmark table, and bundle the held-out renders.
#
# Inputs (prepared on the CPU machine): .whl-gs4d/*.whl (gsplat 1.5.3, diffusers 0.42.1, importlib_metadata,
# zipp) and .whl-gs4d/packs/<key>.npz (python scripts/gs4d_leaderboard.py pack --gt out/board-gt --out .whl-gs4d/packs).
# Everything lands in $OUT (log.txt, bench.md, one <preset>.npz of renders + fit.json files per preset). FIT_S: seconds for the fits; JOBS / BACKGROUND: the job lists (see --jobs).
set -uo pipefail
OUT=${OUT:-out/gpu-gs4d}
mkdir -p "$OUT"
FIT_S=${FIT_S:-400}
JOBS=${JOBS:-default:ada__dance,default,no_neighbour:ada__dance,no_gate:ada__dance,no_progressive:ada__dance,no_neighbour,no_gate,no_progressive}
BACKGROUND=${BACKGROUND:-research:ada__dance}
RUNS=${RUNS:-/tmp/gs4d-runs}
export MAX_JOBS=16 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-gs4d/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
python3 -c "import torch, gsplat, diffusers; print('torch', torch.__version__, 'gsplat', gsplat.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/log.txt"
# First gsplat call compiles the CUDA extension (timed here, separately from any fit).
python3 - <<'PY' 2>&1 | tee -a "$OUT/log.txt"
import time, torch
t = time.perf_counter()
from gsplat import rasterization
n = 1000
out = rasterization(torch.randn(n, 3, device="cuda") + torch.tensor([0, 0, 4.0], device="cuda"),
                    torch.randn(n, 4, device="cuda"), torch.rand(n, 3, device="cuda") * 0.05, torch.rand(n, device="cuda"),
                    torch.rand(n, 3, device="cuda"), torch.eye(4, device="cuda")[None], torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]], device="cuda"), 64, 64)
torch.cuda.synchronize()
print(f"gsplat first call (CUDA compile) {time.perf_counter() - t:.1f} s")
PY
timeout 180 python3 -m pytest tests/reference_model/test_gs4d_gpu.py -q -p no:cacheprovider -x 2>&1 | tee -a "$OUT/log.txt" | tail -5
python3 scripts/gs4d_leaderboard.py fit --data .whl-gs4d/packs --runs "$RUNS" --jobs "$JOBS" --background "$BACKGROUND" \
  --deadline "$FIT_S" 2>&1 | tee -a "$OUT/log.txt"
python3 scripts/bench/gs4d_fit.py --runs "$RUNS" --sample ada__dance --out "$OUT/bench.md" 2>&1 | tee -a "$OUT/log.txt"
python3 scripts/gs4d_leaderboard.py bundle --runs "$RUNS" --out "$OUT"
ls -la "$OUT"
