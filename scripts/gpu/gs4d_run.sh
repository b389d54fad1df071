#!/usr/bin/env bash
# One GPU-machine run of the 4D Gaussian leaderboard fits: install gsplat (pure-Python wheel; compiles its CUDA
# code on first use), the gpu-marked gs4d tests, a timing probe that sets the final-stage steps for a fit of
# BUDGET seconds (scripts/bench/gs4d_profile.py --budget), the default fit of every sample one after another
# (alone on the GPU, so their times are clean), then the ablations (ABLATIONS, run side by side), the benchmark
# table, a step profile (PROFILE=1), and the bundles of held-out renders.
#
# Inputs (prepared on the CPU machine): .whl-gs4d/*.whl (gsplat 1.5.3, diffusers 0.42.1, importlib_metadata,
# zipp) and .whl-gs4d/packs/<key>.npz (python scripts/gs4d_leaderboard.py pack --gt out/board-gt --out .whl-gs4d/packs).
# Everything lands in $OUT: log.txt, bench.md, profile.txt, <preset>.npz (renders + fit.json files), model.tgz
# (the first sample's fitted model, for exports). FIT_S: seconds for all fits; FINAL_STEPS skips the probe;
# JOBS: the foreground fits (default: the default preset on every sample); TESTS=0 skips the gpu tests.
set -uo pipefail
OUT=${OUT:-out/gpu-gs4d}
mkdir -p "$OUT"
FIT_S=${FIT_S:-400}
BUDGET=${BUDGET:-55}
JOBS=${JOBS-default}
ABLATIONS=${ABLATIONS-no_neighbour:ada__dance,no_gate:ada__dance,no_progressive:ada__dance}
RUNS=${RUNS:-/tmp/gs4d-runs}
PACKS=.whl-gs4d/packs
export MAX_JOBS=16 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-gs4d/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
[ "${TESTS:-1}" = 1 ] && timeout 200 python3 -m pytest tests/reference_model/test_gs4d_gpu.py -q -p no:cacheprovider -x 2>&1 | tee -a "$OUT/log.txt" | tail -3
if [ -z "${FINAL_STEPS:-}" ]; then
  python3 scripts/bench/gs4d_profile.py --data "$PACKS/ada__dance.npz" --sample ada__dance --budget "$BUDGET" --steps 100 \
    2>&1 | tee "$OUT/probe.txt" | tee -a "$OUT/log.txt"
  FINAL_STEPS=$(sed -n 's/^FINAL_STEPS=//p' "$OUT/probe.txt")
fi
FINAL_STEPS=${FINAL_STEPS:-0}  # the config's default when the probe failed
echo "final_steps=$FINAL_STEPS" | tee -a "$OUT/log.txt"
START=$(date +%s)
python3 scripts/gs4d_leaderboard.py fit --data "$PACKS" --runs "$RUNS" --jobs "$JOBS" --set "final_steps=$FINAL_STEPS" \
  --deadline "$FIT_S" 2>&1 | tee -a "$OUT/log.txt"
LEFT=$(( FIT_S - ($(date +%s) - START) ))
if [ "$LEFT" -gt 30 ] && [ -n "$ABLATIONS" ]; then
  python3 scripts/gs4d_leaderboard.py fit --data "$PACKS" --runs "$RUNS" --jobs "" --background "$ABLATIONS" \
    --set "final_steps=$FINAL_STEPS" --deadline "$LEFT" 2>&1 | tee -a "$OUT/log.txt"
fi
python3 scripts/bench/gs4d_fit.py --runs "$RUNS" --sample ada__dance --presets default,no_neighbour,no_gate,no_progressive \
  --out "$OUT/bench.md" 2>&1 | tee -a "$OUT/log.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 60 python3 scripts/bench/gs4d_profile.py --data "$PACKS/ada__dance.npz" --sample ada__dance --steps 40 \
    > "$OUT/profile.txt" 2>&1; head -2 "$OUT/profile.txt" | tee -a "$OUT/log.txt"
fi
python3 scripts/gs4d_leaderboard.py bundle --runs "$RUNS" --out "$OUT"
tar czf "$OUT/model.tgz" -C "$RUNS/default/ada__dance" model config.json fit.json orbit.gif 2>/dev/null
ls -la "$OUT"
