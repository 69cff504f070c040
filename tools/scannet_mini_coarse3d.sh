#!/usr/bin/env bash
# COARSE3D and its baselines on the real ScanNet mini set (../shared/data/scannet_mini or
# $JAXSEG_SCANNET_MINI): train on the 13 scans of rooms 0000-0005 with a few labelled points,
# evaluate on the 5 scans of rooms 0006-0008 as supervised segmentation.
#   bash tools/scannet_mini_coarse3d.sh                       # 0.1% and 0.01%, draws 0 1 2
#   RATIOS=0.001 SEEDS="0" bash tools/scannet_mini_coarse3d.sh
# Per ratio and label draw (weak.seed): COARSE3D and cross-entropy on the same labels (the
# baseline reads COARSE3D's weak_labels.npz); once: full supervision; with INIT=<a PointDC or
# GrowSP work directory>, also COARSE3D started from it. A finished run (timings.json says
# so) is kept and an interrupted one resumed; tools/coarse3d_table.py then prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${WORKDIRS:-workdirs}

finished() {  # finished WORKDIR: its last invocation finished (timings.json says so)
  [ -f "$1/timings.json" ] && $PY -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("finished", True) else 1)' "$1/timings.json"
}

run() {  # run WORKDIR [OVERRIDES...]
  local workdir=$1; shift
  if finished "$workdir"; then echo "[coarse3d] $workdir is done; kept"; return; fi
  local resume=()
  [ -n "$(ls -A "$workdir/checkpoints" 2>/dev/null)" ] && resume=(--resume)
  $PY experiments/main.py --config configs/scannet_mini.py:coarse3d \
      --config.workdir="$workdir" "$@" "${resume[@]}"
}

for ratio in ${RATIOS:-0.001 0.0001}; do
  for seed in ${SEEDS:-0 1 2}; do
    tag=${ratio}_draw$seed
    run $W/coarse3d_$tag --config.weak.ratio=$ratio --config.weak.seed=$seed
    run $W/coarse3d_ce_$tag --config.coarse3d.contrast=False \
        --config.weak.labels_from=$W/coarse3d_$tag
    if [ -n "${INIT:-}" ]; then
      run $W/coarse3d_init_$tag --config.init="$INIT" --config.weak.labels_from=$W/coarse3d_$tag
    fi
  done
done
run $W/coarse3d_full --config.coarse3d.contrast=False --config.weak.ratio=1 --config.weak.by=point
$PY tools/coarse3d_table.py $W/coarse3d_*
