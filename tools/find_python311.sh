# Sourced by tools/setup.sh and tools/setup_peers.sh: sets $python to a CPython 3.11
# interpreter ($PYTHON if set, else python3.11 or python3 when either is 3.11), or exits with
# an error tagged with $1 (the calling script's log tag).
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c \
        'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "[$1] error: CPython 3.11 not found; install it or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
