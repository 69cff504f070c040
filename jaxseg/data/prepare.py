"""From a data config to a built ArrayRecord dataset: readers + super-voxels + normals + tfds.

  handle = prepare_dataset(config.data)          # builds once, then reuses
  source = handle.source("train")                # random-access records, numpy, no TensorFlow

The dataset directory is keyed by a hash of everything that changes the stored records (format,
root, splits, super-voxel and normal settings), so a changed setting builds a new dataset
instead of silently reusing a stale one.
"""

from __future__ import annotations

import dataclasses
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

from jaxseg.data import tfds_builders
from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.geometry import normals as normals_lib
from jaxseg.io import sources
from jaxseg.logging_utils import get_logger
from jaxseg.supervoxels import api as supervoxels_api
from jaxseg.synthetic import cache as synthetic_cache

_LOG = get_logger("data.prepare")
# Which tfds builder stores each input format.
_BUILDER_KIND = {"synthetic": "synthetic", "scannet": "scannet", "votenet": "scannet",
                 "mmdet3d": "scannet", "s3dis": "s3dis", "custom": "custom"}


@dataclasses.dataclass
class DatasetHandle:
  """A built dataset: where it is and which splits it has."""

  builder: tfds.core.DatasetBuilder
  splits: dict[str, str]   # config split name (e.g. 'Area_5') -> tfds split name.
  reader_format: str       # the jaxseg.io format the scenes were read with.
  root: str                # the export root the scenes were read from.

  @property
  def data_dir(self) -> str:
    return self.builder.data_dir

  def source(self, split: str):
    """Random-access records of a config split name (e.g. data.train_split)."""
    if split not in self.splits:
      raise InputError(self.data_dir, f"split {split!r} is not in this dataset",
                       f"use one of {sorted(self.splits)}")
    return self.builder.as_data_source(split=self.splits[split])


def _tfds_split_name(split: str) -> str:
  """tfds split names are word characters and may not be 'all' (a tfds keyword)."""
  return "all_scenes" if split == "all" else re.sub(r"\W", "_", split)


def resolve_source(data: ml_collections.ConfigDict) -> tuple[str, str, str | None]:
  """(reader format, export root, label map) for a data config; generates the built-in
  synthetic dataset on first use."""
  if data.format == "synthetic":
    s = data.synthetic
    root = synthetic_cache.ensure_synthetic_scannet(
        cache_dir=s.cache_dir or None, num_train=s.num_train, num_val=s.num_val, seed=s.seed,
        frames_per_scene=s.frames_per_scene)
    return "scannet", root, os.path.join(root, "scannetv2-labels.combined.tsv")
  root = os.path.abspath(os.path.expanduser(data.root))
  if not os.path.exists(root):
    raise InputError(root, "data.root does not exist",
                     "pass --config.data.root=/path/to/the/export")
  return data.format, root, data.label_map or None


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


def _compute_segments(scene: Scene, supervoxels: dict[str, Any]) -> np.ndarray:
  method = supervoxels_api.resolve_method(scene, supervoxels["method"])
  return supervoxels_api.compute_supervoxels(scene, method=method, **supervoxels[method])


def _compute_normals(scene: Scene, radius: float, max_nn: int) -> np.ndarray:
  if scene.has_mesh:
    return normals_lib.vertex_normals(scene.coords, scene.faces)
  return normals_lib.estimate_normals(scene.coords, radius, max_nn)


def dataset_key(fmt: str, root: str, splits: dict[str, list], data: ml_collections.ConfigDict
                ) -> str:
  """A short hash of everything that determines the stored records."""
  content = {"format": fmt, "root": root, "frames_root": data.frames_root,
             "label_map": data.label_map, "with_frames": data.with_frames, "splits": splits,
             "supervoxels": data.supervoxels.to_dict(), "normals": data.normals.to_dict()}
  return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def prepare_dataset(data: ml_collections.ConfigDict) -> DatasetHandle:
  """Builds (or reuses) the ArrayRecord dataset described by a data config."""
  fmt, root, label_map = resolve_source(data)
  splits = _split_scene_ids(fmt, root, data)
  kind = _BUILDER_KIND[data.format]
  parent = data.dataset_dir or os.path.join(synthetic_cache.default_cache_root(), "datasets")
  data_dir = os.path.join(os.path.abspath(os.path.expanduser(parent)),
                          f"{data.format}-{dataset_key(fmt, root, splits, data)}")
  # Formats without frames ignore with_frames; 'scannet' and 'votenet' read frames_root.
  load_kwargs = {"with_frames": bool(data.with_frames), "label_map": label_map,
                 "frames_root": data.frames_root or None}
  builder = tfds_builders.make_builder(
      kind, data_dir,
      {_tfds_split_name(s): ids for s, ids in splits.items()},
      load_scene=functools.partial(sources.load_scene, fmt, root, **load_kwargs),
      compute_segments=functools.partial(_compute_segments,
                                         supervoxels=data.supervoxels.to_dict()),
      compute_normals=functools.partial(_compute_normals, radius=data.normals.radius,
                                        max_nn=data.normals.max_nn),
      skip_bad=data.skip_bad)
  if data.rebuild and os.path.isdir(builder.data_dir):
    _LOG.info("data.rebuild=True: removing %s", builder.data_dir)
    shutil.rmtree(builder.data_dir)
  if builder.is_prepared():
    _LOG.info("reusing the dataset in %s (set data.rebuild=True to build it again)",
              builder.data_dir)
  else:
    _LOG.info("building %d scene(s) from %s (%s) into %s",
              sum(map(len, splits.values())), root, fmt, builder.data_dir)
  builder.download_and_prepare()
  return DatasetHandle(builder=builder, splits={s: _tfds_split_name(s) for s in splits},
                       reader_format=fmt, root=root)
