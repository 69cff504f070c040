"""Config helpers: clear errors for unknown keys, and writing the resolved config."""

from __future__ import annotations

import difflib
import json
import os
import re

import ml_collections


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


def write_resolved_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes the resolved config as `<workdir>/config.json` and returns the path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  with open(path, "w") as f:
    json.dump(json.loads(config.to_json_best_effort()), f, indent=2, sort_keys=True)
  return path
