#!/usr/bin/env bash
# One GPU-machine run: the full-size stage-2 training-step benchmark, then the small model trained from
# scratch (stage 1, then stage 2 from it) on character4d renders in the weight-free latent space, then its
# CharacterBench predictions. Everything it produces lands in $OUT (logs, loss records, predictions).
#
# Inputs (prepared on the CPU machine, see docs/training.md): .whl-train/ (diffusers, webdataset,
# braceexpand, importlib_metadata wheels), .carry-train/c4d-train/ (training shards),
# .carry-train/board_inputs.npz (scripts/gpu/small_model_predictions.py pack).
# Time budget per part (seconds): BENCH_S, STAGE1_S, STAGE2_S.
set -uo pipefail
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
BENCH_S=${BENCH_S:-150}
STAGE1_S=${STAGE1_S:-120}
STAGE2_S=${STAGE2_S:-150}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-train/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
RUN=${RUN:-/tmp/run}
EXTRA=${EXTRA:-}  # more --set overrides for both stages (CPU dry runs)
if [ "$BENCH_S" -gt 0 ]; then
  timeout "$BENCH_S" python3 scripts/bench/train_step.py --mode bf16 --mode mixed --steps 2 --json "$OUT/bench_train_step.json" 2>&1 | tee "$OUT/bench_train_step.txt"
fi
python3 -m reference_model.cli train --stage 2d --config reference_model/configs/small-c4d128-2d.json \
  --set data.root=.carry-train/c4d-train --set time_limit_s="$STAGE1_S" --set num_workers=12 $EXTRA \
  --output-dir $RUN/small-2d --quiet > "$OUT/stage1.txt" 2>&1; tail -5 "$OUT/stage1.txt"
cp $RUN/small-2d/log.jsonl "$OUT/stage1_log.jsonl"
python3 -m reference_model.cli train --stage multiview --config reference_model/configs/small-c4d128-multiview.json \
  --set data.root=.carry-train/c4d-train --set time_limit_s="$STAGE2_S" --set num_workers=12 $EXTRA \
  --init-from $RUN/small-2d --output-dir $RUN/small-multiview --quiet > "$OUT/stage2.txt" 2>&1; tail -5 "$OUT/stage2.txt"
cp $RUN/small-multiview/log.jsonl "$OUT/stage2_log.jsonl"
for inputs in .carry-train/*_inputs.npz; do
  name=$(basename "$inputs" _inputs.npz)
  python3 scripts/gpu/small_model_predictions.py predict --model $RUN/small-multiview --inputs "$inputs" \
    --out "$OUT/${name}_outputs.npz" --steps ${PRED_STEPS:-50} 2>&1 | tail -3 | tee -a "$OUT/predict.txt"
done
cp $RUN/small-2d/config.json "$OUT/stage1_config.json"; cp $RUN/small-multiview/config.json "$OUT/stage2_config.json"
(cd "$OUT" && tar czf logs.tgz --remove-files *.txt *.jsonl *_config.json bench_train_step.json 2>/dev/null)
ls -la "$OUT"
