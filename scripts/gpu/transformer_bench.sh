#!/usr/bin/env bash
# The multi-view transformer on the GPU machine: GPU tests of the transformers, then the full-size
# step benchmark (random weights). Writes $OUT/transformer_step.{md,json} and $OUT/gpu_tests.log.
# Usage (repository root, with diffusers' wheels in .whl-tf/):
#   bash scripts/gpu/transformer_bench.sh [MODES] [extra benchmark args, e.g. --profile --no-micro]
#   SKIP_TESTS=1 skips the GPU tests.
set -uo pipefail
MODES="${1:-eager,compiled,fused,fp8}"
shift || true
OUT="${OUT:-out/transformer-bench}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-tf/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -z "${SKIP_TESTS:-}" ]; then
  python3 -m pytest -q -m gpu -p no:cacheprovider tests/reference_model/test_transformer_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -5
fi
python3 scripts/bench/transformer_step.py --modes "$MODES" --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
