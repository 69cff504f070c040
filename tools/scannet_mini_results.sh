#!/usr/bin/env bash
# Reproduces the README's results table on the 18 labelled scans of the real ScanNet mini set
# (../shared/data/scannet_mini or $JAXSEG_SCANNET_MINI); each run writes report.json/.md in its
# work directory, and tools/results_table.py collects them into one Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MAIN="$PY experiments/main.py --config configs/scannet_mini.py"
W=${WORKDIRS:-workdirs}
$PY experiments/main.py --config configs/scannet_mini.py:cmd --config.workdir=$W/scannet_mini_cmd
$MAIN --config.init=$W/scannet_mini_cmd --config.workdir=$W/scannet_mini_svc_kmeans
$MAIN --config.init=$W/scannet_mini_cmd --config.svc.assign=sinkhorn \
    --config.workdir=$W/scannet_mini_svc_sinkhorn
$PY experiments/main.py --config configs/scannet_mini.py:growsp --config.workdir=$W/scannet_mini_growsp
$PY experiments/main.py --config configs/scannet_mini.py:growsp --config.init=$W/scannet_mini_cmd \
    --config.workdir=$W/scannet_mini_growsp_cmd
$MAIN --config.mode=eval --config.eval.features=raw_descriptors --config.workdir=$W/scannet_mini_raw
$MAIN --config.mode=eval --config.eval.checkpoint=random --config.workdir=$W/scannet_mini_random
$PY tools/results_table.py $W/scannet_mini_svc_kmeans $W/scannet_mini_svc_sinkhorn \
    $W/scannet_mini_growsp $W/scannet_mini_growsp_cmd $W/scannet_mini_raw $W/scannet_mini_random --cmd $W/scannet_mini_cmd
