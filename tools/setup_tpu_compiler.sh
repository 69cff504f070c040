#!/usr/bin/env bash
# Puts the TPU compiler (the libtpu wheel that jax[tpu] pins for the installed jax) into
# .tpu-compiler/, so that `python tools/benchmark.py --suite tpu_compile` can compile the
# project's programs for a TPU v5e on this CPU-only machine (ahead-of-time, no TPU needed).
# For the benchmark only: not a jaxseg requirement, never in requirements.txt.
# Usage: bash tools/setup_tpu_compiler.sh      (after bash tools/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "[setup_tpu_compiler] no .venv here: run bash tools/setup.sh first" >&2
  exit 1
fi
# A libtpu of another release than jax's pin would not load, so no pin is an error.
pin=$(.venv/bin/python - <<'PY'
import importlib.metadata as metadata
pins = [r.split(";")[0].strip() for r in metadata.requires("jax")
        if r.startswith("libtpu") and 'extra == "tpu"' in r]
print(pins[0] if pins else "")
PY
)
if [ -z "$pin" ]; then
  echo "[setup_tpu_compiler] the installed jax names no libtpu for its [tpu] extra;" \
       "install the libtpu release its notes give into .tpu-compiler/ by hand" >&2
  exit 1
fi
if [ "$(cat .tpu-compiler/.pin 2>/dev/null)" != "$pin" ]; then
  echo "[setup_tpu_compiler] installing $pin into .tpu-compiler/ (about 200 MB)"
  rm -rf .tpu-compiler
  .venv/bin/python -m pip install -q --no-deps --target .tpu-compiler "$pin"
  echo "$pin" > .tpu-compiler/.pin
fi
echo "[setup_tpu_compiler] ready: $(ls .tpu-compiler/libtpu/libtpu.so)"
