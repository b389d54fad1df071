#!/usr/bin/env bash
# One GPU-machine run of the 4D Gaussian settings sweep on ada__dance (scripts/bench/gs4d_sweep.py) and a
# profile of the step (scripts/bench/gs4d_profile.py).
#
# Carry one folder (CARRY, default .whl-sweep) holding: the gsplat 1.5.3, diffusers 0.42.1, importlib_metadata
# and zipp wheels; ada__dance.npz (python scripts/gs4d_leaderboard.py pack --gt out/board-gt --samples ada__dance
# --out DIR); cb/weights/{lpips_alex.safetensors,weights.json} (from ~/.cache/characterbench/weights), so
# fit.json carries held-out LPIPS. Results land in $OUT (log.txt, sweep.md, profile.txt, fits.tgz).
set -uo pipefail
OUT=${OUT:-out/gpu-sweep}
CARRY=${CARRY:-.whl-sweep}
VARIANTS=${VARIANTS:-scripts/bench/gs4d_variants/speed.json}
SWEEP_S=${SWEEP_S:-420}
PARALLEL=${PARALLEL:-3}  # 7 at once ran each fit >3x slower: all but the first passed a 400 s deadline
mkdir -p "$OUT"
export MAX_JOBS=16 PYTHONUNBUFFERED=1 CHARACTERBENCH_HOME=$PWD/$CARRY/cb
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$CARRY"/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
# Compile gsplat's CUDA code once, before anything is timed.
python3 -c "
import time, torch; t = time.perf_counter(); from gsplat import rasterization
n = 1000; d = 'cuda'
rasterization(torch.randn(n, 3, device=d) + torch.tensor([0, 0, 4.0], device=d), torch.randn(n, 4, device=d),
              torch.rand(n, 3, device=d) * 0.05, torch.rand(n, device=d), torch.rand(n, 3, device=d), torch.eye(4, device=d)[None],
              torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]], device=d), 64, 64)
torch.cuda.synchronize(); print(f'gsplat first call (CUDA compile) {time.perf_counter() - t:.1f} s')" 2>&1 | tee -a "$OUT/log.txt"
python3 scripts/bench/gs4d_sweep.py --data "$CARRY/ada__dance.npz" --sample ada__dance --variants "$VARIANTS" \
  --runs /tmp/sweep --parallel "$PARALLEL" --deadline "$SWEEP_S" --out "$OUT/sweep.md" 2>&1 | tee -a "$OUT/log.txt"
timeout 90 python3 scripts/bench/gs4d_profile.py --data "$CARRY/ada__dance.npz" --sample ada__dance --steps 40 \
  > "$OUT/profile.txt" 2>&1; tail -3 "$OUT/profile.txt"; head -2 "$OUT/profile.txt"
tar czf "$OUT/fits.tgz" -C /tmp/sweep --exclude=model --exclude=pred . 2>/dev/null
ls -la "$OUT"
