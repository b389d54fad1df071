#!/usr/bin/env bash
# Prepare .whl-eval/ (git-ignored) for scripts/gpu/eval_bench.sh: the metric weights it needs (I3D for the four
# FVDs, LPIPS AlexNet) copied from the local weights cache, and the webdataset/braceexpand wheels the GPU
# machine lacks. Checks that the whole working-tree copy stays under the GPU machine's 64 MiB.
set -euo pipefail
HOME_SRC=${CHARACTERBENCH_HOME:-$HOME/.cache/characterbench}
DEST=.whl-eval
mkdir -p "$DEST/home/weights"
for f in i3d_kinetics400.safetensors lpips_alex.safetensors weights.json; do
  cp -u "$HOME_SRC/weights/$f" "$DEST/home/weights/$f"
done
ls "$DEST"/webdataset-1.0.2-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps -d "$DEST" webdataset==1.0.2 braceexpand==0.1.7
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
carry_bytes=$(du -sb "$DEST" | cut -f1)
total=$((tree_bytes + carry_bytes))
echo "working tree $((tree_bytes / 1048576)) MiB + $DEST $((carry_bytes / 1048576)) MiB = $((total / 1048576)) MiB (limit 64 MiB)"
[ "$total" -lt $((64 * 1048576)) ] || { echo "too large for the GPU machine's copy" >&2; exit 1; }
