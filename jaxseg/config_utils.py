"""Config helpers: clear errors for unknown keys, and writing the resolved config."""

from __future__ import annotations

import difflib
import json
import os
import re
import time

import ml_collections

from jaxseg.errors import os_error
from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger

_LOG = get_logger("config")
# Sections every run config has (jaxseg/config_defaults.py base_config builds them).
REQUIRED_SECTIONS = ("mode", "workdir", "seed", "data", "model", "teacher", "parallel",
                     "checkpoint", "log_every_steps", "cmd", "svc", "eval")


def missing_sections(config: ml_collections.ConfigDict) -> list[str]:
  """The REQUIRED_SECTIONS a loaded config lacks."""
  return [k for k in REQUIRED_SECTIONS if k not in config]


def flatten_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """All dotted leaf keys of a config, e.g. ['data.voxel_size', 'mode', ...]."""
  keys = []
  for name, value in config.items():
    path = f"{prefix}{name}"
    if isinstance(value, ml_collections.ConfigDict):
      keys += flatten_keys(value, path + ".")
    else:
      keys.append(path)
  return sorted(keys)


def unknown_override_message(argv: list[str], config: ml_collections.ConfigDict,
                             flag_name: str = "config") -> str | None:
  """Returns an error message for the first `--config.a.b=v` naming no key, else None."""
  known = set(flatten_keys(config))
  prefixes = {k.rsplit(".", i)[0] for k in known for i in range(k.count(".") + 1)}
  for arg in argv:
    match = re.match(rf"--{flag_name}\.([\w.]+)(=|$)", arg)
    if not match:
      continue
    key = match.group(1)
    if key in known or key in prefixes:
      continue
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    depth = key.count(".")
    siblings = sorted({".".join(k.split(".")[:depth + 1]) for k in known
                       if k.startswith(parent + ".") or not parent})
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (f"unknown config key '{key}' in {arg!r}.{hint} Valid keys"
            f"{' under ' + parent if parent else ''}: {', '.join(siblings) or '(none)'}")
  return None


def write_resolved_config(config: ml_collections.ConfigDict, workdir: str,
                          name: str = "config.json") -> str:
  """Writes the resolved config as `<workdir>/<name>` and returns the path.

  The new file is written completely before anything is renamed (a full disk leaves the old
  file as it was, never an empty one). An existing file of that name with other values is
  kept as `config.<its mtime>.json` (for config.json), with a log line, so the record of how
  earlier checkpoints were made is never lost.
  """
  path = os.path.join(workdir, name)
  resolved = json.loads(config.to_json_best_effort())
  try:
    os.makedirs(workdir, exist_ok=True)
    atomic.write_json(path + ".new", resolved)
    previous = atomic.read_json(path)
    if previous is not None and previous != resolved:
      _keep_previous(path)
    os.replace(path + ".new", path)
  except OSError as e:
    raise os_error(path, e, reading=False, what="resolved config") from e
  return path


def _keep_previous(path: str) -> None:
  """Renames <name>.json to <name>.<its mtime>.json (a free name), with a log line."""
  base = os.path.splitext(path)[0]
  stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(os.path.getmtime(path)))
  kept = f"{base}.{stamp}.json"
  counter = 1
  while os.path.exists(kept):
    kept = f"{base}.{stamp}-{counter}.json"
    counter += 1
  os.rename(path, kept)
  _LOG.info("the previous %s (other values) is kept as %s", os.path.basename(path), kept)


