#!/usr/bin/env bash
# Re-make the board's baseline rows from its registered ground truth, by command (never typed):
# for each task and baseline, build the prediction folder, score it and submit it (submit re-scores it).
#   bash scripts/board_baselines.sh out/board-gt [WORK_DIR]
set -euo pipefail
GT=${1:?usage: board_baselines.sh GT [WORK_DIR]}
WORK=${2:-out/board-baselines}
CB=${CHARACTERBENCH:-characterbench}
declare -A METRICS=([multiview]=ssim,psnr,lpips,fvd_f,fvd_v,fvd_d,fv4d [apose]=psnr,ssim,lpips)
declare -A BASELINES=([multiview]="ground-truth static-apose front-view" [apose]="ground-truth front-view")
for task in apose multiview; do
  for b in ${BASELINES[$task]}; do
    pred="$WORK/$task/$b"
    rm -rf "$pred"
    $CB baseline "$b" --gt "$GT" --out "$pred" --quiet
    $CB eval --task "$task" --pred "$pred" --gt "$GT" --metrics "${METRICS[$task]}" --label "$b" \
      --out "$WORK/$task-$b.json" --quiet
    $CB submit "$WORK/$task-$b.json" --pred "$pred" --gt "$GT" --replace --quiet --name "$b (baseline)" \
      --notes "reference baseline built from the ground truth by characterbench baseline $b"
  done
done
