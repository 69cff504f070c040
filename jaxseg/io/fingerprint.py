"""Fingerprints of a dataset's source files (sizes and modification times), so that a cache
notices a replaced file.

  digests = scene_digests({"scene0000_00": ["/data/scans/scene0000_00"]})
  changed, added, removed = compare(old_digests, digests)

Folders are walked. Colour and depth images are left out: records store their paths, not their
content, and ScanNet has tens of thousands of them per scan. Poses, intrinsics, meshes, labels
and everything else count.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Mapping, Sequence

# Stored as path references in the records (see jaxseg.data.tfds_builders).
_REFERENCED_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _stat_entry(path: str) -> tuple[str, int, int]:
  """(path, size, mtime_ns); a path that cannot be resolved has size and mtime -1."""
  try:
    stat = os.stat(path)
  except OSError:
    return path, -1, -1
  return path, stat.st_size, stat.st_mtime_ns


def _walk_files(folder: str, seen: set[tuple[int, int]]) -> Iterable[str]:
  """Files below `folder`, sorted, following links to folders but never into a cycle."""
  try:
    stat = os.stat(folder)
    names = sorted(os.listdir(folder))
  except OSError:
    yield folder
    return
  if (stat.st_dev, stat.st_ino) in seen:
    return
  seen.add((stat.st_dev, stat.st_ino))
  for name in names:
    path = os.path.join(folder, name)
    if os.path.isdir(path):
      yield from _walk_files(path, seen)
    elif not name.lower().endswith(_REFERENCED_EXTENSIONS):
      yield path


def file_stats(paths: Iterable[str]) -> list[tuple[str, int, int]]:
  """(path, size, mtime_ns) of every file of `paths`, folders walked (links followed, cycles
  not), sorted; a path that cannot be resolved gives a (path, -1, -1) entry."""
  stats = []
  for path in paths:
    if os.path.isdir(path):
      stats += [_stat_entry(p) for p in _walk_files(path, set())]
    else:
      stats.append(_stat_entry(path))
  return sorted(stats)


def digest(paths: Iterable[str]) -> str:
  """A short hash of the sizes and modification times of the files of `paths`."""
  text = json.dumps(file_stats(paths))
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def scene_digests(files_per_scene: Mapping[str, Sequence[str]]) -> dict[str, str]:
  """{scene id: digest of its files}."""
  return {scene: digest(paths) for scene, paths in files_per_scene.items()}


def compare(old: Mapping[str, str], new: Mapping[str, str]
            ) -> tuple[list[str], list[str], list[str]]:
  """(changed, added, removed) keys between two {name: digest} mappings, each sorted."""
  changed = sorted(k for k in new if k in old and old[k] != new[k])
  return changed, sorted(set(new) - set(old)), sorted(set(old) - set(new))
