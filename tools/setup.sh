#!/usr/bin/env bash
# Sets up everything jaxseg needs on a fresh Debian/Ubuntu machine with CPython 3.11:
#  - libgomp (OpenMP, loaded by scikit-learn and XLA's CPU runtime), via apt when missing;
#  - a virtual environment .venv/ with the pinned requirements.txt (reinstalled only when
#    requirements.txt changes) and jaxseg itself installed in editable mode (`pip install -e .`:
#    `import jaxseg` from anywhere and the `jaxseg` command).
# Usage: bash tools/setup.sh      (then use .venv/bin/python)
set -euo pipefail
# Ctrl-C stops set-up here (compileall catches it and exits 1, which must not count as done).
trap 'echo "[setup] interrupted"; exit 130' INT
cd "$(dirname "$0")/.."

need_apt=()
ldconfig -p | grep -q 'libgomp.so.1' || need_apt+=(libgomp1)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] installing system packages: ${need_apt[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

source tools/find_python311.sh setup

[ -x .venv/bin/python ] || { echo "[setup] creating .venv with $python"; "$python" -m venv .venv; }
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements.txt into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # pip byte-compiles one file at a time; compileall on every core writes the same .pyc files
  # sooner (2 cores, warm pip cache: the whole set-up 49-50 s instead of 59-60 s). It lists
  # any file it cannot compile; Python compiles those on import.
  .venv/bin/python -m pip install -q --no-compile -r requirements.txt
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  .venv/bin/python -m compileall -q -j 0 "$site" \
    || echo "[setup] the files above could not be byte-compiled; Python compiles them on import"
  echo "$want" > .venv/.requirements.sha256
fi
# Editable install of this checkout (no dependencies: requirements.txt pins them).
if [ "$(.venv/bin/python -c 'import jaxseg, os; print(os.path.dirname(os.path.dirname(os.path.abspath(jaxseg.__file__))))' 2>/dev/null)" != "$PWD" ] \
    || [ ! -x .venv/bin/jaxseg ]; then
  echo "[setup] installing jaxseg (editable) into .venv"
  out=$(.venv/bin/python -m pip install -q --no-deps -e . 2>&1) || { echo "$out"; exit 1; }
fi
echo "[setup] ready: $(.venv/bin/python -c 'import jax; print("jax", jax.__version__)')"
