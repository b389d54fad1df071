#!/usr/bin/env bash
# One GPU-machine run of `charactershot export-mesh --method tsdf` on a fitted 4D Gaussian model: the canonical
# Gaussians rendered by gsplat from 38 fusion cameras, TSDF fusion, marching cubes, vertices carried by the
# Gaussians over the 25 frames (reference_model/export/mesh.py). The export is bounded to 80 s; its stage times
# land in tsdf/mesh.json, where render_s includes gsplat's first-call CUDA compile on a fresh machine.
#
# Carry two git-ignored paths: CARRY (default .whl-export) holding the gsplat 1.5.3, diffusers 0.42.1, importlib_metadata
# 10.2.0 and zipp 4.1.2 wheels (as .whl-gs4d) and pygltflib 1.16.5, dataclasses-json 0.6.7, marshmallow 3.26.2,
# Deprecated 1.3.1 (pip download --no-deps --only-binary=:all: --python-version 3.12 ...); and MODEL (default
# out/gpu-gs4d-call1/model.tgz: `model/ config.json fit.json` of a fit directory, as gs4d_run.sh writes it).
#   bash scripts/gpu/export_mesh_tsdf.sh      # carrying .whl-export and out/gpu-gs4d-call1/model.tgz (28 MB)
# Results in $OUT: log.txt, tsdf/mesh.glb + tsdf/mesh.json (timings, sizes, device). The ground truth stays on
# the CPU machine (too large to carry); measure the returned mesh there (--character: the board's ada.glb was
# rebuilt since, see docs/benchmarks.md; --no-surface for silhouette IoU alone):
#   python scripts/bench/export_mesh.py --gt out/board-gt --meshes FILES_AT/tsdf/mesh.glb \
#     --character ~/.cache/character4d/default-data/v5/characters/ada.glb
set -uo pipefail
OUT=${OUT:-out/gpu-export}
CARRY=${CARRY:-.whl-export}
MODEL=${MODEL:-out/gpu-gs4d-call1/model.tgz}
mkdir -p "$OUT"
export MAX_JOBS=16 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$CARRY"/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
FIT=/tmp/export-fit
rm -rf "$FIT" && mkdir -p "$FIT" && tar xzf "$MODEL" -C "$FIT" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
START=$(date +%s%N)
timeout 80 python3 -m reference_model.cli export-mesh "$FIT" --out "$OUT/tsdf" --method tsdf --device cuda 2>&1 \
  | tee -a "$OUT/log.txt"
echo "export-mesh --method tsdf process wall $(( ($(date +%s%N) - START) / 1000000 )) ms" | tee -a "$OUT/log.txt"
python3 -c "
import json; r = json.load(open('$OUT/tsdf/mesh.json'))
print({k: r[k] for k in ('method', 'motion', 'device', 'gaussians', 'vertices', 'faces', 'voxels', 'render_s',
                         'fusion_s', 'marching_cubes_s', 'deformation_s', 'total_s', 'bytes') if k in r})" 2>&1 | tee -a "$OUT/log.txt"
ls -la "$OUT" "$OUT/tsdf"
