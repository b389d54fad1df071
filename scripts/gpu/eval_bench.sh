#!/usr/bin/env bash
# A default 100-sample `characterbench eval` on the GPU machine (goal: <= 30 s including the 1000-resample
# bootstrap), timed by stage. Self-contained: the 100-sample ground truth (21 views x 25 frames at 512 px,
# UNIQUE distinct synthetic characters, the rest re-keyed copies: costing the evaluation as much as distinct
# ones) and the static-A-pose predictions are generated there first (~10-20 s on 16 cores), then
# scripts/bench/eval_throughput.py runs one cold evaluation (CUDA start and weight loading included).
#
# Inputs (prepared here by `bash scripts/gpu/eval_carry.sh`): .whl-eval/*.whl (webdataset, braceexpand: the
# GPU machine has neither) and .whl-eval/home/weights/ (I3D and LPIPS-AlexNet safetensors + weights.json,
# ~58 MiB). Results land in $OUT: log.txt (stage table) and eval.json.
#   run(command="OUT=$OUT bash scripts/gpu/eval_bench.sh", carry=[".whl-eval"])
# Local dry run on the CPU: PYTHON=.venv/bin/python DEVICE=cpu SAMPLES=3 UNIQUE=1 BOOTSTRAP=100 WORKERS=2 bash scripts/gpu/eval_bench.sh
set -uo pipefail
OUT=${OUT:-out/gpu-eval}
PYTHON=${PYTHON:-python3}
SAMPLES=${SAMPLES:-100}
UNIQUE=${UNIQUE:-16}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-16}
BOOTSTRAP=${BOOTSTRAP:-1000}
WORK=${WORK:-/tmp/characterbench-evalbench}
mkdir -p "$OUT"
$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-eval .whl-eval/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site-eval:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 CHARACTERBENCH_HOME="$PWD/.whl-eval/home"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"; nproc; uptime; } | tee "$OUT/log.txt"
$PYTHON -c "import torch, numpy, PIL; print('torch', torch.__version__, 'numpy', numpy.__version__, 'pillow', PIL.__version__)" | tee -a "$OUT/log.txt"
$PYTHON scripts/bench/eval_throughput.py --samples "$SAMPLES" --unique "$UNIQUE" --device "$DEVICE" --workers "$WORKERS" \
  --bootstrap "$BOOTSTRAP" --work "$WORK" --json "$OUT/eval.json" 2>&1 | tee -a "$OUT/log.txt"
