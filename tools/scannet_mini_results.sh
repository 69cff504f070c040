#!/usr/bin/env bash
# Reproduces the README's results tables on the 18 labelled scans of the real ScanNet mini set
# (../shared/data/scannet_mini or $JAXSEG_SCANNET_MINI); each run writes report.json/.md in its
# work directory, and tools/results_table.py collects them into one Markdown table.
#   bash tools/scannet_mini_results.sh                # both protocols
#   PROTOCOLS=split bash tools/scannet_mini_results.sh    # only the inductive split
# transductive: train and evaluate on all 18 scans; split: train on the 13 scans of rooms
# 0000-0005, evaluate on the 5 scans of rooms 0006-0008.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${WORKDIRS:-workdirs}
MINI="$PY experiments/main.py --config configs/scannet_mini.py"
$PY experiments/main.py --config configs/scannet_mini.py:cmd --config.workdir=$W/scannet_mini_cmd

for protocol in ${PROTOCOLS:-transductive split}; do
  case $protocol in
    transductive) SPLIT=(); S="" ;;
    split) SPLIT=("--config.data.train_split=scene000[0-5]_*" "--config.data.val_split=scene000[6-8]_*")
           S="_split" ;;
    *) echo "unknown protocol $protocol (transductive or split)" >&2; exit 2 ;;
  esac
  $MINI "${SPLIT[@]}" --config.init=$W/scannet_mini_cmd --config.workdir=$W/scannet_mini_svc_kmeans$S
  $MINI "${SPLIT[@]}" --config.init=$W/scannet_mini_cmd --config.svc.assign=sinkhorn \
      --config.workdir=$W/scannet_mini_svc_sinkhorn$S
  $MINI:growsp "${SPLIT[@]}" --config.workdir=$W/scannet_mini_growsp$S
  $MINI:growsp "${SPLIT[@]}" --config.init=$W/scannet_mini_cmd --config.workdir=$W/scannet_mini_growsp_cmd$S
  $MINI "${SPLIT[@]}" --config.mode=eval --config.eval.features=raw_descriptors \
      --config.workdir=$W/scannet_mini_raw$S
  $MINI "${SPLIT[@]}" --config.mode=eval --config.eval.checkpoint=random \
      --config.workdir=$W/scannet_mini_random$S
  $PY tools/results_table.py $W/scannet_mini_{svc_kmeans,svc_sinkhorn,growsp,growsp_cmd,raw,random}$S \
      --cmd $W/scannet_mini_cmd
done
