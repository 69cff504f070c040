#!/usr/bin/env bash
# Sets up the PyTorch-based benchmark peers in their own virtual environment .venv-peers/:
#  torch==2.13.0 (CPU build), spconv 2.3.x (CPU package, with cumm), numpy, scipy.
# These are for side-by-side benchmarks only (tools/peer_bench.py); they are not jaxseg
# requirements and never go into requirements.txt. Reinstalled only when the pins below change.
# Usage: bash tools/setup_peers.sh      (then .venv-peers/bin/python tools/peer_bench.py ...)
set -euo pipefail
cd "$(dirname "$0")/.."

# Exactly this torch: a CPU wheel of it is on the benchmark machines' disk; a plain `torch`
# would pull a multi-GB CUDA build. spconv/cumm without a -cuXXX suffix are the CPU packages.
pins=(torch==2.13.0 "spconv>=2.3,<2.4" "cumm>=0.4" numpy scipy)

source tools/find_python311.sh setup_peers

venv=.venv-peers
if [ ! -x $venv/bin/python ]; then
  echo "[setup_peers] creating $venv with $python"
  "$python" -m venv $venv
fi
want=$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat $venv/.pins.sha256 2>/dev/null)" != "$want" ]; then
  echo "[setup_peers] installing ${pins[*]} into $venv (first time: a few minutes)"
  $venv/bin/python -m pip install -q --upgrade pip
  $venv/bin/python -m pip install -q "${pins[@]}"
  echo "$want" > $venv/.pins.sha256
fi
$venv/bin/python - <<'EOF'
import torch
try:
  import spconv
  spconv_version = spconv.__version__
except Exception as error:  # still usable: peer_bench.py then times plain torch only
  spconv_version = f"unavailable ({type(error).__name__}: {error})"
print(f"[setup_peers] ready: torch {torch.__version__}, spconv {spconv_version}")
EOF
