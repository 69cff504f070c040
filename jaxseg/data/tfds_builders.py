"""TFDS dataset builders that store `Scene`s as ArrayRecord files, readable without TensorFlow.

One builder per source kind (`jaxseg_scannet`, `jaxseg_s3dis`, `jaxseg_custom`,
`jaxseg_synthetic`); they share `SceneBuilder` and differ only in their tfds name. The scene
list and the loader are injected, so the same builder serves every reader:

  builder = make_builder("scannet", data_dir, {"train": ids}, load_scene=my_loader,
                         compute_segments=felzenszwalb, skip_bad=True)
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]          # random access, numpy, no TensorFlow
  # later, without the loader: tfds.builder_from_directory(builder.data_dir)
  #                         or tfds.data_source("jaxseg_scannet", data_dir=data_dir)

Records keep the order of the injected scene list (shuffling at write time is disabled), so
record `i` of a split is the i-th scene that was not skipped; `scene_index` in the input
pipeline is this record index.

Per-record features (N points, V frames):
  name              Text (comes back as bytes)
  coords            float32 (N, 3)         colors    uint8 (N, 3)
  normals           float32 (N, 3), zeros when `has_normals` is False
  labels            int32 (N,), -1 ignore; all -1 when `has_labels` is False
  instances         int32 (N,), 0 = none (all 0 when unknown)
  segments          int32 (N,), -1 = no super-voxel;  num_segments int32 (max id + 1)
  frames/poses      float32 (V, 4, 4) camera-to-world
  frames/color_intrinsics, frames/depth_intrinsics  float32 (3, 3)
  frames/color_paths, frames/depth_paths  Sequence(Text): ABSOLUTE paths stored as references,
                    not image bytes. RGB-D videos are tens of GB per split; copying them into the
                    records would duplicate them, so the images must stay where they were at
                    build time (rebuild the dataset after moving them).
  frames/color_size, frames/depth_size  int32 (2,) (width, height)
  frames/depth_scale float32 (depth units per metre)
  origin            float64 (3,) offset subtracted from the source coordinates (zeros = none;
                    see jaxseg.io.coords): source coordinates = coords + origin
A scene without frames stores V = 0, zero intrinsics and sizes, depth_scale 0.

Building never stops on a scene without saying which and why: every per-scene failure (bad
content, unreadable or missing files, a reader error) becomes an InputError naming the scene;
with `skip_bad` it is logged, the scene left out and listed in `skipped_scenes.json`, and a
split whose scenes were all left out is an error. Errors of the machine (disk full, read-only
file system) stop the build even with `skip_bad`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxseg.data.scene import Frames, Scene
from jaxseg.errors import InputError, is_environment_error, os_error
from jaxseg.logging_utils import get_logger, progress

KINDS = ("scannet", "s3dis", "custom", "synthetic")
SKIPPED_FILE = "skipped_scenes.json"
_VERSION = "1.0.0"
# Bumped whenever readers or records change what a scene stores (part of the dataset key, so
# datasets built by older code are not reused): 2 = colour rescaling, origin, label checks.
RECORD_VERSION = 2
_SKIP_FIX = "or set data.skip_bad=True (--config.data.skip_bad=True) to leave the scene out"
_LOG = get_logger("data.tfds_builders")

SceneLoader = Callable[[str], Scene]
PointsFn = Callable[[Scene], np.ndarray]


def scene_features() -> tfds.features.FeaturesDict:
  """The tfds feature spec of one scene record (see the module docstring)."""
  f = tfds.features
  points = lambda dtype: f.Tensor(shape=(None, 3), dtype=dtype)
  per_point = lambda: f.Tensor(shape=(None,), dtype=np.int32)
  return f.FeaturesDict({
      "name": f.Text(),
      "coords": points(np.float32),
      "colors": points(np.uint8),
      "normals": points(np.float32),
      "has_normals": f.Scalar(dtype=np.bool_),
      "labels": per_point(),
      "has_labels": f.Scalar(dtype=np.bool_),
      "instances": per_point(),
      "segments": per_point(),
      "num_segments": f.Scalar(dtype=np.int32),
      "origin": f.Tensor(shape=(3,), dtype=np.float64),
      "frames": f.FeaturesDict({
          "poses": f.Tensor(shape=(None, 4, 4), dtype=np.float32),
          "color_intrinsics": f.Tensor(shape=(3, 3), dtype=np.float32),
          "depth_intrinsics": f.Tensor(shape=(3, 3), dtype=np.float32),
          "color_paths": f.Sequence(f.Text()),
          "depth_paths": f.Sequence(f.Text()),
          "color_size": f.Tensor(shape=(2,), dtype=np.int32),
          "depth_size": f.Tensor(shape=(2,), dtype=np.int32),
          "depth_scale": f.Scalar(dtype=np.float32),
      }),
  })


def _abs_path(path: str) -> str:
  return os.path.abspath(path) if path else ""


def _frames_example(frames: Optional[Frames]) -> dict[str, Any]:
  if frames is None or len(frames) == 0:
    zeros33 = np.zeros((3, 3), np.float32)
    return {"poses": np.zeros((0, 4, 4), np.float32), "color_intrinsics": zeros33,
            "depth_intrinsics": zeros33, "color_paths": [], "depth_paths": [],
            "color_size": np.zeros(2, np.int32), "depth_size": np.zeros(2, np.int32),
            "depth_scale": np.float32(0)}
  return {"poses": np.asarray(frames.poses, np.float32).reshape(-1, 4, 4),
          "color_intrinsics": np.asarray(frames.color_intrinsics, np.float32),
          "depth_intrinsics": np.asarray(frames.depth_intrinsics, np.float32),
          "color_paths": [_abs_path(p) for p in frames.color_paths],
          "depth_paths": [_abs_path(p) for p in frames.depth_paths],
          "color_size": np.asarray(frames.color_size, np.int32),
          "depth_size": np.asarray(frames.depth_size, np.int32),
          "depth_scale": np.float32(frames.depth_scale)}


def scene_to_example(scene: Scene) -> dict[str, Any]:
  """Encodes a validated `Scene` into the feature dict of `scene_features()`."""
  n = scene.num_points
  segments = (np.full(n, -1, np.int32) if scene.segments is None
              else np.asarray(scene.segments, np.int32))
  return {
      "name": scene.name,
      "coords": np.asarray(scene.coords, np.float32),
      "colors": np.asarray(scene.colors, np.uint8),
      "normals": (np.zeros((n, 3), np.float32) if scene.normals is None
                  else np.asarray(scene.normals, np.float32)),
      "has_normals": scene.normals is not None,
      "labels": (np.full(n, -1, np.int32) if scene.labels is None
                 else np.asarray(scene.labels, np.int32)),
      "has_labels": scene.labels is not None,
      "instances": (np.zeros(n, np.int32) if scene.instances is None
                    else np.asarray(scene.instances, np.int32)),
      "segments": segments,
      "num_segments": np.int32(segments.max() + 1 if n else 0),
      "origin": (np.zeros(3) if scene.origin is None
                 else np.asarray(scene.origin, np.float64)),
      "frames": _frames_example(scene.frames),
  }


def record_text(value: Any) -> str:
  """A Text feature of a record (bytes when read back) as str."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def example_to_scene(example: Mapping[str, Any]) -> Scene:
  """Decodes a record read back from the data source into a `Scene` (inverse of
  `scene_to_example`; absent normals/labels become None, zero frames become None)."""
  fr = example["frames"]
  frames = None
  if len(fr["poses"]):
    frames = Frames(color_paths=[record_text(p) for p in fr["color_paths"]],
                    depth_paths=[record_text(p) for p in fr["depth_paths"]],
                    poses=np.asarray(fr["poses"]),
                    color_intrinsics=np.asarray(fr["color_intrinsics"]),
                    depth_intrinsics=np.asarray(fr["depth_intrinsics"]),
                    color_size=tuple(int(v) for v in fr["color_size"]),
                    depth_size=tuple(int(v) for v in fr["depth_size"]),
                    depth_scale=float(fr["depth_scale"]))
  origin = np.asarray(example.get("origin", np.zeros(3)), np.float64)
  return Scene(name=record_text(example["name"]), coords=np.asarray(example["coords"]),
               colors=np.asarray(example["colors"]),
               normals=np.asarray(example["normals"]) if example["has_normals"] else None,
               labels=np.asarray(example["labels"]) if example["has_labels"] else None,
               instances=np.asarray(example["instances"]),
               segments=np.asarray(example["segments"]), frames=frames,
               origin=origin if origin.any() else None, source=record_text(example["name"]))


class _LocalDatasetInfo(tfds.core.DatasetInfo):
  """DatasetInfo of a dataset built here, never published: it skips tfds' lookup of published
  metadata, which in tfds 4.9 makes an empty temporary directory (`tempfile.mkdtemp`) on every
  builder constructed before its dataset is prepared, and never removes it."""

  def initialize_from_bucket(self) -> None:
    """Nothing to fetch: these datasets exist only where they were built."""


class SceneBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared ArrayRecord builder; subclasses only set the tfds `name`.

  Constructed without `scene_ids`/`load_scene` the builder can still read a prepared dataset
  (that is what `tfds.data_source(name, data_dir=...)` does); preparing then raises InputError.
  """

  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = {_VERSION: "Scenes with points, labels, super-voxels and frame references."}

  def __init__(self, *, scene_ids: Optional[Mapping[str, Sequence[str]]] = None,
               load_scene: Optional[SceneLoader] = None,
               compute_segments: Optional[PointsFn] = None,
               compute_normals: Optional[PointsFn] = None, skip_bad: bool = False,
               **kwargs: Any):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)
    self._scene_ids = {k: list(v) for k, v in (scene_ids or {}).items()}
    self._load_scene = load_scene
    self._compute_segments = compute_segments
    self._compute_normals = compute_normals
    self._skip_bad = skip_bad
    self._skipped: dict[str, list[dict[str, str]]] = {}
    self._generated = False

  def _info(self) -> tfds.core.DatasetInfo:
    return _LocalDatasetInfo(builder=self, features=scene_features(), disable_shuffling=True,
                             description=self.__class__.__doc__)

  def _split_generators(self, dl_manager):
    del dl_manager  # Scenes come from the injected loader, nothing is downloaded.
    if self._load_scene is None or not self._scene_ids:
      raise InputError(self.data_dir, f"builder {self.name} has no scene list or loader",
                       "build with jaxseg.data.tfds_builders.make_builder(kind, data_dir, "
                       "scene_ids, load_scene, ...)")
    self._generated = True
    return {split: self._generate_examples(split, ids)
            for split, ids in self._scene_ids.items()}

  def _prepare_scene(self, scene_id: str) -> Scene:
    scene = self._load_scene(scene_id)
    if scene.segments is None and self._compute_segments is not None:
      scene.segments = np.asarray(self._compute_segments(scene), np.int32)
      if scene.num_points and (scene.segments < 0).all():
        raise InputError(scene.source or scene.name, f"no super-voxel could be formed from the "
                         f"scene's {scene.num_points} points (too few or too sparse)",
                         "check the scene's scale and density, or lower "
                         "data.supervoxels.vccs.min_points")
    if scene.normals is None and self._compute_normals is not None:
      scene.normals = np.asarray(self._compute_normals(scene), np.float32)
    return scene.validate()

  def _load_or_explain(self, scene_id: str) -> Scene:
    """The prepared scene, or an InputError naming the scene for any per-scene failure.

    Errors of the machine (disk full, read-only file system, out of memory) and interrupts
    pass through unchanged: they are not the scene's fault.
    """
    try:
      return self._prepare_scene(scene_id)
    except InputError as e:
      raise InputError(e.path, f"scene {scene_id}: {e.problem}", e.fix) from e
    except Exception as e:  # pylint: disable=broad-exception-caught
      if is_environment_error(e):
        raise
      if isinstance(e, OSError):
        error = os_error(None, e)
      else:
        _LOG.debug("scene %s failed", scene_id, exc_info=True)
        error = InputError(None, f"reading failed with {type(e).__name__}: {e}",
                           "check the scene's files against the format's description in "
                           "README's Data preparation")
      raise InputError(error.path, f"scene {scene_id}: {error.problem}", error.fix) from e

  def _generate_examples(self, split: str, scene_ids: Sequence[str]):
    skipped = self._skipped.setdefault(split, [])
    for scene_id in progress(scene_ids, desc=f"{self.name}/{split}", total=len(scene_ids)):
      try:
        scene = self._load_or_explain(scene_id)
      except InputError as e:
        if not self._skip_bad:
          raise InputError(e.path, e.problem, f"{e.fix}; {_SKIP_FIX}") from e
        _LOG.warning("skipping scene %s (split %s): %s", scene_id, split, e)
        skipped.append({"scene": scene_id, "error": str(e)})
        continue
      yield scene_id, scene_to_example(scene)
    if len(skipped) == len(scene_ids):
      first = skipped[0]["error"].split(". Fix: ")[0]
      raise InputError(None, f"all {len(scene_ids)} scenes of split {split!r} were skipped as "
                       f"bad (the first: {first})",
                       "fix the files named in the warnings above, or choose other scenes "
                       "for this split")

  def download_and_prepare(self, *args: Any, **kwargs: Any) -> None:
    """Builds every split, then lists skipped scenes in `<data_dir>/skipped_scenes.json`
    (an empty mapping when none were skipped). Reusing an existing dataset keeps its list."""
    self._skipped, self._generated = {}, False
    super().download_and_prepare(*args, **kwargs)
    if self._generated:
      with open(os.path.join(self.data_dir, SKIPPED_FILE), "w") as f:
        json.dump({k: v for k, v in self._skipped.items() if v}, f, indent=2)


class ScannetScenes(SceneBuilder):
  """ScanNet scans (raw export, VoteNet or mmdetection3d layout) as jaxseg scene records."""
  name = "jaxseg_scannet"


class S3disScenes(SceneBuilder):
  """S3DIS rooms as jaxseg scene records."""
  name = "jaxseg_s3dis"


class CustomScenes(SceneBuilder):
  """User point clouds (PLY / npy / txt) as jaxseg scene records."""
  name = "jaxseg_custom"


class SyntheticScenes(SceneBuilder):
  """Procedurally generated rooms as jaxseg scene records."""
  name = "jaxseg_synthetic"


BUILDERS = {"scannet": ScannetScenes, "s3dis": S3disScenes, "custom": CustomScenes,
            "synthetic": SyntheticScenes}


def make_builder(kind: str, data_dir: str, scene_ids: Mapping[str, Sequence[str]],
                 load_scene: SceneLoader, compute_segments: Optional[PointsFn] = None,
                 compute_normals: Optional[PointsFn] = None,
                 skip_bad: bool = False) -> SceneBuilder:
  """Returns the builder of `kind` ('scannet' | 's3dis' | 'custom' | 'synthetic').

  scene_ids: split name -> scene ids, in the order the records will have.
  load_scene: scene id -> Scene (InputError on bad input).
  compute_segments / compute_normals: Scene -> int32 (N,) / float32 (N, 3), called only when
    the loaded scene lacks them.
  skip_bad: log and skip scenes that fail to load or prepare, whatever the error (listed in
    skipped_scenes.json), instead of stopping the build; disk-full and similar errors of the
    machine still stop it, and so does a split left without scenes.
  The dataset is written to `<data_dir>/jaxseg_<kind>/<version>/`.
  """
  if kind not in BUILDERS:
    raise InputError(None, f"unknown dataset kind {kind!r}", f"use one of {list(KINDS)}")
  return BUILDERS[kind](data_dir=data_dir, scene_ids=scene_ids, load_scene=load_scene,
                        compute_segments=compute_segments, compute_normals=compute_normals,
                        skip_bad=skip_bad)
