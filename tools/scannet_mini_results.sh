#!/usr/bin/env bash
# Reproduces the README's results tables on the 18 labelled scans of the real ScanNet mini set
# (../shared/data/scannet_mini or $JAXSEG_SCANNET_MINI); each run writes report.json/.md in its
# work directory, and tools/results_table.py collects them into one Markdown table.
#   bash tools/scannet_mini_results.sh                # both protocols
#   PROTOCOLS=split bash tools/scannet_mini_results.sh    # only the inductive split
# transductive: train and evaluate on all 18 scans; split: train on the 13 scans of rooms
# 0000-0005, evaluate on the 5 scans of rooms 0006-0008. A run whose work directory already
# holds its result (timings.json, finished) is not run again, and an interrupted one is
# resumed, so the script continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${WORKDIRS:-workdirs}

finished() {  # finished WORKDIR: its last invocation finished (timings.json says so)
  [ -f "$1/timings.json" ] && $PY -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("finished", True) else 1)' "$1/timings.json"
}

run() {  # run WORKDIR CONFIG [OVERRIDES...]
  local workdir=$1 config=$2; shift 2
  if finished "$workdir"; then echo "[results] $workdir is done; kept"; return; fi
  local resume=()
  [ -n "$(ls -A "$workdir/checkpoints" 2>/dev/null)" ] && resume=(--resume)
  $PY experiments/main.py --config "configs/$config" --config.workdir="$workdir" "$@" "${resume[@]}"
}

run $W/scannet_mini_cmd scannet_mini.py:cmd

for protocol in ${PROTOCOLS:-transductive split}; do
  case $protocol in
    transductive) SPLIT=(); S="" ;;
    split) SPLIT=("--config.data.train_split=scene000[0-5]_*" "--config.data.val_split=scene000[6-8]_*")
           S="_split" ;;
    *) echo "unknown protocol $protocol (transductive or split)" >&2; exit 2 ;;
  esac
  # The baselines first (minutes), then one row per method, then the variants.
  run $W/scannet_mini_raw$S scannet_mini.py "${SPLIT[@]}" --config.mode=eval \
      --config.eval.features=raw_descriptors
  run $W/scannet_mini_random$S scannet_mini.py "${SPLIT[@]}" --config.mode=eval \
      --config.eval.checkpoint=random
  run $W/scannet_mini_svc_kmeans$S scannet_mini.py "${SPLIT[@]}" --config.init=$W/scannet_mini_cmd
  run $W/scannet_mini_growsp$S scannet_mini.py:growsp "${SPLIT[@]}"
  run $W/scannet_mini_svc_sinkhorn$S scannet_mini.py "${SPLIT[@]}" \
      --config.init=$W/scannet_mini_cmd --config.svc.assign=sinkhorn
  run $W/scannet_mini_growsp_cmd$S scannet_mini.py:growsp "${SPLIT[@]}" \
      --config.init=$W/scannet_mini_cmd
  $PY tools/results_table.py $W/scannet_mini_{svc_kmeans,svc_sinkhorn,growsp,growsp_cmd,raw,random}$S \
      --cmd $W/scannet_mini_cmd
done
