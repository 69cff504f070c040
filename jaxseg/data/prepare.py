"""From a data config to a built ArrayRecord dataset: readers + super-voxels + normals + tfds.

  handle = prepare_dataset(config.data)          # builds once, then reuses
  source = handle.source("train")                # random-access records, numpy, no TensorFlow

The dataset directory is keyed by a hash of everything that changes the stored records (format,
root, splits, super-voxel and normal settings, and the sizes and modification times of the
source files), so a changed setting or a replaced file builds a new dataset, with a log line
naming what changed, instead of silently reusing a stale one.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import os
import re
import shutil
from typing import Any

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxseg.data import presample, tfds_builders
from jaxseg.data.scene import Scene
from jaxseg.errors import InputError, errno_in_message, os_error
from jaxseg.geometry import normals as normals_lib
from jaxseg.io import atomic, files, fingerprint, sources
from jaxseg.logging_utils import get_logger
from jaxseg.supervoxels import api as supervoxels_api
from jaxseg.synthetic import cache as synthetic_cache

_LOG = get_logger("data.prepare")
# Which tfds builder stores each input format.
_BUILDER_KIND = {"synthetic": "synthetic", "scannet": "scannet", "votenet": "scannet",
                 "mmdet3d": "scannet", "s3dis": "s3dis", "custom": "custom"}
# What a finished dataset was built from: {'settings': key, 'digests': {scene: digest}, ...,
# 'posed_scenes': {tfds split: names of its scenes with a posed frame}}.
SOURCES_FILE = "jaxseg_sources.json"
_SHARED = "<shared>"


@dataclasses.dataclass
class DatasetHandle:
  """A built dataset: where it is and which splits it has."""

  builder: tfds.core.DatasetBuilder
  splits: dict[str, str]   # config split name (e.g. 'Area_5') -> tfds split name.
  reader_format: str       # the jaxseg.io format the scenes were read with.
  root: str                # the export root the scenes were read from.
  folder: str              # the dataset's folder (the builder's data_dir lies below it).

  @property
  def data_dir(self) -> str:
    return self.builder.data_dir

  def source(self, split: str):
    """Random-access records of a config split name (e.g. data.train_split)."""
    return self.builder.as_data_source(split=self._tfds_split(split))

  def posed_scenes(self, split: str) -> list[str] | None:
    """Names of the split's scenes with at least one posed frame, as listed when the dataset
    was built; None for a dataset built before the list existed."""
    listed = (_read_sources_file(self.folder) or {}).get("posed_scenes")
    return None if listed is None else list(listed.get(self._tfds_split(split), []))

  def _tfds_split(self, split: str) -> str:
    if split not in self.splits:
      raise InputError(self.data_dir, f"split {split!r} is not in this dataset",
                       f"use one of {sorted(self.splits)}")
    return self.splits[split]


def _tfds_split_name(split: str) -> str:
  """tfds split names are word characters and may not be 'all' (a tfds keyword)."""
  return "all_scenes" if split == "all" else re.sub(r"\W", "_", split)


def resolve_source(data: ml_collections.ConfigDict) -> tuple[str, str, str | None]:
  """(reader format, export root, label map) for a data config; generates the built-in
  synthetic dataset on first use. InputError for a root, frames_root or label_map that
  cannot be read."""
  if data.format == "synthetic":
    s = data.synthetic
    root = synthetic_cache.ensure_synthetic_scannet(
        cache_dir=s.cache_dir or None, num_train=s.num_train, num_val=s.num_val, seed=s.seed,
        frames_per_scene=s.frames_per_scene)
    return "scannet", root, os.path.join(root, "scannetv2-labels.combined.tsv")
  root = os.path.abspath(os.path.expanduser(data.root))
  problem = files.path_problem(root)
  if problem is not None:
    raise InputError(root, f"data.root {problem}", "pass --config.data.root=/path/to/the/export")
  if data.frames_root:
    files.require_dir(os.path.abspath(os.path.expanduser(data.frames_root)), "data.frames_root",
                      "pass the folder of per-scene frame folders, or leave data.frames_root "
                      "empty")
  if data.label_map:
    files.require_file(os.path.abspath(os.path.expanduser(data.label_map)), "data.label_map",
                       "pass the path of scannetv2-labels.combined.tsv")
  return data.format, root, data.label_map or None


def split_scene_ids(data: ml_collections.ConfigDict) -> tuple[str, str, str | None,
                                                               dict[str, list[str]]]:
  """(reader format, root, label map, {config split: scene ids}) of a data config, without
  building anything (the built-in dataset is generated on first use)."""
  fmt, root, label_map = resolve_source(data)
  return fmt, root, label_map, _split_scene_ids(fmt, root, data)


def _split_scene_ids(fmt: str, root: str, data: ml_collections.ConfigDict) -> dict[str, list]:
  splits = {}
  for split in dict.fromkeys((data.train_split, data.val_split)):
    ids = sources.list_scenes(fmt, root, None if split == "all" else split)
    if data.max_scenes:
      ids = ids[:data.max_scenes]
    if not ids:
      raise InputError(root, f"no scenes found for split {split!r} (format {fmt})",
                       "check data.root, data.format and the split names")
    splits[split] = ids
  return splits


def _frames_coverage(fmt: str, frames_root: str, splits: dict[str, list]) -> None:
  """Logs how many scenes have a folder in data.frames_root (a warning when none has)."""
  ids = sorted({i for split in splits.values() for i in split})
  found = sum(os.path.isdir(os.path.join(frames_root, i)) for i in ids)
  log = _LOG.warning if not found else _LOG.info
  log("data.frames_root %s: %d of %d scenes have a frames folder%s", frames_root, found,
      len(ids), "; the others are read without frames" if fmt == "votenet" and found else "")


def _compute_normals(scene: Scene, radius: float, max_nn: int) -> np.ndarray:
  if scene.has_mesh:
    return normals_lib.vertex_normals(scene.coords, scene.faces)
  return normals_lib.estimate_normals(scene.coords, radius, max_nn)


def _load_presampled(scene_id: str, *, load, cell: float) -> Scene:
  """load(scene_id) sub-sampled to one point per `cell`-metre cube (data.presample)."""
  return presample.grid_presample(load(scene_id), cell)


def settings_key(fmt: str, root: str, splits: dict[str, list],
                 data: ml_collections.ConfigDict) -> str:
  """A short hash of the settings that determine the stored records (format, root, splits,
  frames, label map, super-voxel and normal settings, pre-subsampling, record version)."""
  content = {"format": fmt, "root": root, "frames_root": data.frames_root,
             "label_map": data.label_map, "with_frames": data.with_frames, "splits": splits,
             "supervoxels": data.supervoxels.to_dict(), "normals": data.normals.to_dict(),
             "records": tfds_builders.RECORD_VERSION}
  if data.presample:   # Keys of datasets built before the option existed stay the same.
    content["presample"] = float(data.presample)
  return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def source_digests(fmt: str, root: str, splits: dict[str, list], frames_root: str | None,
                   label_map: str | None) -> dict[str, str]:
  """{scene id: digest of its files' sizes and mtimes} plus '<shared>' for label maps, split
  files and info pickles (jaxseg.io.fingerprint)."""
  scenes = sorted({i for ids in splits.values() for i in ids})
  digests = fingerprint.scene_digests(
      {i: sources.scene_files(fmt, root, i, frames_root=frames_root) for i in scenes})
  digests[_SHARED] = fingerprint.digest(
      sources.shared_files(fmt, root, frames_root=frames_root, label_map=label_map))
  return digests


def dataset_key(settings: str, digests: dict[str, str]) -> str:
  """A short hash of the settings key and the source digests: the dataset folder's name."""
  content = json.dumps([settings, digests], sort_keys=True)
  return hashlib.sha256(content.encode()).hexdigest()[:12]


def _read_sources_file(data_dir: str) -> dict[str, Any] | None:
  try:
    with open(os.path.join(data_dir, SOURCES_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _explain_build(parent: str, name: str, settings: str, digests: dict[str, str]) -> None:
  """Logs why a dataset is built: changed source files (named, against the newest dataset with
  the same settings), or settings not built before."""
  prefix = name.rsplit("-", 1)[0] + "-"
  older = []
  for other in sorted(os.listdir(parent)):
    info = _read_sources_file(os.path.join(parent, other))
    if other != name and other.startswith(prefix) and info and info.get("settings") == settings:
      older.append((os.path.getmtime(os.path.join(parent, other)), other, info["digests"]))
  if not older:
    _LOG.info("no dataset with these settings in %s yet", parent)
    return
  _, other, old = max(older)
  changed, added, removed = fingerprint.compare(old, digests)
  parts = [f"{len(v)} {k} ({', '.join(v[:5])}{', ...' if len(v) > 5 else ''})"
           for k, v in (("changed", changed), ("added", added), ("removed", removed)) if v]
  _LOG.warning("source files changed since %s was built (sizes or modification times): %s; "
               "building a new dataset (delete the old folder to free its space)",
               os.path.join(parent, other), "; ".join(parts).replace(_SHARED, "shared files"))


def _check_writable_parent(parent: str) -> None:
  """Creates the datasets folder; InputError naming data.dataset_dir when it cannot be
  written."""
  try:
    os.makedirs(parent, exist_ok=True)
  except OSError as e:
    raise _dataset_dir_error(parent, e) from e
  if not os.access(parent, os.W_OK | os.X_OK):
    raise _dataset_dir_error(parent, PermissionError(errno.EACCES, "Permission denied", parent))


def _dataset_dir_error(parent: str, error: OSError) -> InputError:
  """An InputError about the datasets folder whose fix names data.dataset_dir."""
  e = os_error(parent, error, reading=False, what="dataset folder")
  if "--config.data.dataset_dir" in e.fix:
    return e
  return InputError(e.path, e.problem, f"{e.fix}; or set --config.data.dataset_dir to a "
                    "writable folder")


def _build(builder: tfds.core.DatasetBuilder, parent: str) -> None:
  """builder.download_and_prepare(); the writers' RuntimeErrors about the disk (full,
  read-only, no permission) become OSErrors with their errno."""
  try:
    builder.download_and_prepare()
  except RuntimeError as e:
    code = errno_in_message(e)
    if code is None:
      raise
    raise OSError(code, os.strerror(code), parent) from e


def scenes_with_poses(source) -> list[str]:
  """Names of the scenes of a split's records (`DatasetHandle.source`) with at least one
  finite camera pose; decodes every record once."""
  records = (source[i] for i in range(len(source)))
  return [tfds_builders.record_text(r["name"]) for r in records
          if np.isfinite(np.asarray(r["frames"]["poses"]).reshape(-1, 16)).all(1).any()]


def _posed_scenes(builder: tfds.core.DatasetBuilder) -> dict[str, list[str]]:
  """{tfds split: `scenes_with_poses`}, read back once after a build so that a run rendering
  into the frames (CluRender) need not decode every record at start-up."""
  return {split: scenes_with_poses(builder.as_data_source(split=split))
          for split in builder.info.splits}


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  """builder.is_prepared(), without tfds' warning about a folder that does not exist yet."""
  return os.path.isdir(builder.data_dir) and builder.is_prepared()


def prepare_dataset(data: ml_collections.ConfigDict) -> DatasetHandle:
  """Builds (or reuses) the ArrayRecord dataset described by a data config.

  A finished dataset whose settings and source files (sizes, modification times) are unchanged
  is reused, also from a read-only folder. Otherwise the dataset is built, under a lock that
  makes a concurrent run of the same build wait and then reuse the result, into a temporary
  folder beside the final one that replaces it only when complete (data.rebuild=True keeps the
  old dataset until then); leftovers of interrupted builds are removed first.
  """
  fmt, root, label_map, splits = split_scene_ids(data)
  frames_root = (os.path.abspath(os.path.expanduser(data.frames_root)) if data.frames_root
                 else None)
  if frames_root and fmt in ("scannet", "votenet"):
    _frames_coverage(fmt, frames_root, splits)
  settings = settings_key(fmt, root, splits, data)
  digests = source_digests(fmt, root, splits, frames_root, label_map)
  parent = os.path.abspath(os.path.expanduser(
      data.dataset_dir or os.path.join(synthetic_cache.default_cache_root(), "datasets")))
  name = f"{data.format}-{dataset_key(settings, digests)}"
  data_dir = os.path.join(parent, name)
  # Formats without frames ignore with_frames; 'scannet' and 'votenet' read frames_root.
  load_kwargs = {"with_frames": bool(data.with_frames), "label_map": label_map,
                 "frames_root": frames_root}
  load = functools.partial(sources.load_scene, fmt, root, **load_kwargs)
  if data.presample:
    load = functools.partial(_load_presampled, load=load, cell=float(data.presample))
  make = functools.partial(
      tfds_builders.make_builder, _BUILDER_KIND[data.format],
      scene_ids={_tfds_split_name(s): ids for s, ids in splits.items()},
      load_scene=load,
      compute_segments=functools.partial(supervoxels_api.compute_with_settings,
                                         settings=data.supervoxels.to_dict()),
      compute_normals=functools.partial(_compute_normals, radius=data.normals.radius,
                                        max_nn=data.normals.max_nn),
      skip_bad=data.skip_bad)
  handle = functools.partial(DatasetHandle, splits={s: _tfds_split_name(s) for s in splits},
                             reader_format=fmt, root=root, folder=data_dir)
  builder = make(data_dir)
  if _is_prepared(builder) and not data.rebuild:
    _LOG.info("reusing the dataset in %s (source files unchanged; set data.rebuild=True to "
              "build it again)", builder.data_dir)
    return handle(builder=_warn_skipped(builder))
  _check_writable_parent(parent)
  with atomic.exclusive_lock(os.path.join(parent, f".{name}.lock"), what=data_dir):
    atomic.remove_stale(parent, f".{name}.build-")
    builder = make(data_dir)
    if _is_prepared(builder) and not data.rebuild:
      _LOG.info("reusing the dataset in %s, built meanwhile by another run", builder.data_dir)
      return handle(builder=_warn_skipped(builder))
    if data.rebuild and os.path.lexists(data_dir):
      _LOG.info("data.rebuild=True: building beside %s, which is replaced only when the new "
                "build succeeds", data_dir)
    else:
      _explain_build(parent, name, settings, digests)
    _LOG.info("building %d scene(s) from %s (%s) into %s", sum(map(len, splits.values())),
              root, fmt, data_dir)
    _build_into(make, data_dir, {"settings": settings, "digests": digests, "format": fmt,
                                 "root": root})
  return handle(builder=_warn_skipped(make(data_dir)))


def _warn_skipped(builder):
  """The builder, after a warning per split that its dataset left scenes out as bad
  (data.skip_bad when it was built; they are listed in its skipped_scenes.json)."""
  path = os.path.join(builder.data_dir, tfds_builders.SKIPPED_FILE)
  for split, items in (atomic.read_json(path) or {}).items():
    _LOG.warning("%d scene(s) of split %s were left out of this dataset as bad when it was "
                 "built (data.skip_bad), e.g. %s; the list and the errors are in %s. Fix them "
                 "and set data.rebuild=True to include them", len(items), split,
                 items[0]["scene"], path)
  return builder


def _build_into(make, data_dir: str, sources_info: dict[str, Any]) -> None:
  """Builds with `make(folder)` into a temporary folder beside `data_dir`, writes
  SOURCES_FILE there and swaps it into place; the temporary folder never outlives a failure.
  Call under the dataset's lock."""
  parent, name = os.path.split(data_dir)
  tmp = atomic.make_temp_dir(parent, f".{name}.build-")
  try:
    _build(make(tmp), parent)
    atomic.write_json(os.path.join(tmp, SOURCES_FILE),
                      dict(sources_info, posed_scenes=_posed_scenes(make(tmp))))
    atomic.swap_into_place(tmp, data_dir)
  except OSError as e:
    raise _dataset_dir_error(parent, e) from e
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
