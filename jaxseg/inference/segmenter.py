"""A trained run as a point-cloud segmenter.

  model = jaxseg.load("workdirs/scannet_svc_demo")     # a run's work directory, or
  model = jaxseg.load("model.jaxseg")                  # the bundle its evaluation wrote
  labels = model.predict(points, colors)               # int32 (N,)

The network is the run's newest (its method's network phases); the labels come from the
classifier its final evaluation saved (`jaxseg.eval.classifier`: class ids, named by
`model.class_names`), or, for a run never evaluated, from its last training clustering
(cluster ids: `model.labels_are_classes` is False). A scan of any size is processed whole:
its capacities are sized from its own counts, never cropped.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxseg.data import capacity, packing, pipeline
from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.eval import classifier as classifier_lib
from jaxseg.inference import bundle
from jaxseg.io import atomic
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import to_float32_coords
from jaxseg.io.labels import class_names
from jaxseg.logging_utils import get_logger
from jaxseg.methods import get_method
from jaxseg.supervoxels import api as supervoxels_api
from jaxseg.models.voxel_net import VoxelNet, encoder_variables, model_spec, net_fields
from jaxseg.ops.features import l2_normalize
from jaxseg.train.restore import load_run

_LOG = get_logger("inference.segmenter")


@functools.partial(jax.jit, static_argnames=("net",))
def _unit_features(variables, batch, *, net: VoxelNet) -> jax.Array:
  return l2_normalize(net.apply(variables, batch, train=False)["features"])


@dataclasses.dataclass
class Segmenter:
  """A run's network and classifier (see the module docstring)."""
  config: ml_collections.ConfigDict
  variables: Any
  classifier: classifier_lib.Classifier
  labels_are_classes: bool
  source: str

  def __post_init__(self):
    spec = model_spec(self.config.model)
    self._pipeline = pipeline.config_from_data(self.config.data, spec)
    self._net = VoxelNet(spec, encoder=self.config.model.name,
                         out_dim=self.config.model.out_dim, dtype=self.config.model.dtype,
                         input_colors=bool(self.config.model.get("input_colors", True)))
    self._fields = net_fields(spec)
    self._policy = capacity.CapacityPolicy(name="inference")

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.classifier.class_names

  def save(self, path: str) -> str:
    """Writes this model as one self-contained bundle file (`jaxseg.inference.bundle`)."""
    return bundle.write(path, self.config, self.variables, self.classifier)

  def predict(self, points: np.ndarray, colors: np.ndarray,
              normals: np.ndarray | None = None, pooling: bool = True) -> np.ndarray:
    """int32 (N,) labels of a cloud.

    points: float (N, 3) metres, z up (georeferenced coordinates are recentred in float64
    before the float32 cast, as the file readers do: `jaxseg.io.coords`); colors: (N, 3) RGB
    in 0..255, float 0..1 or 16-bit, converted as the readers do (`jaxseg.io.colors`);
    normals: optional (N, 3), used by the super-voxels (estimated when absent; the network
    reads voxel colours and positions only). pooling: super-voxels are computed for the
    cloud (the run's data.supervoxels settings) and each takes the class of its mean
    feature, as the evaluation's 'supervoxel_pooled' scores; points outside every
    super-voxel, and all points with pooling=False, take their own feature's class. InputError for empty, NaN or
    mis-shaped input and for colours in none of those ranges.
    """
    source = "predict() input"
    coords, origin = to_float32_coords(points, source)
    scene = Scene(name="input", coords=coords, colors=colors_to_uint8(colors, source),
                  source=source, origin=origin,
                  normals=None if normals is None else np.asarray(normals, np.float32))
    return self.predict_scene(scene, pooling)

  def point_features(self, scene: Scene) -> np.ndarray:
    """float32 (N, D) the network's unit feature of every point of a `Scene` (the run's voxel
    size, the whole scene, never cropped)."""
    scene.validate()
    record = {"name": b"input", "coords": scene.coords, "colors": scene.colors,
              "labels": np.full(scene.num_points, -1, np.int32),
              "segments": np.full(scene.num_points, -1, np.int32), "num_segments": 0}
    element = pipeline.process_scene(record, 0, np.random.default_rng(0), self._pipeline,
                                     train=False)
    packs = packing.pack_batch([element], 1, 1, self._pipeline.geometry)
    signature = self._policy.choose(packing.batch_needs(packs))
    batch = packing.pad_packs(packs, signature, self._pipeline.geometry)
    feats = _unit_features(self.variables, {k: batch[k] for k in self._fields},
                           net=self._net)
    valid = batch["point_mask"][0]
    rows = batch["point_index"][0][valid]
    if len(np.unique(rows)) != scene.num_points:
      raise RuntimeError(f"{scene.source or scene.name}: {scene.num_points - len(rows)} point(s) "
                         "were dropped by the input pipeline")
    point_feats = np.zeros((scene.num_points, feats.shape[-1]), np.float32)
    point_feats[rows] = np.asarray(feats[0])[valid]
    return point_feats

  def predict_scene(self, scene: Scene, pooling: bool = True) -> np.ndarray:
    """int32 (N,) labels of a `Scene`; see `predict`. With pooling, the scene's own
    super-voxels (`scene.segments`, e.g. a ScanNet scan's segs.json) are used when it has
    them, else they are computed (its faces, when it has them, shape them)."""
    point_feats = self.point_features(scene)
    labels = self.classifier.labels(point_feats, pooled=pooling)
    if not pooling:
      return labels
    segments = scene.segments
    if segments is None:
      segments = supervoxels_api.compute_with_settings(
          scene, self.config.data.supervoxels.to_dict())
    segments = np.asarray(segments, np.int64)
    inside = segments >= 0
    if inside.any():
      means = np.zeros((int(segments.max()) + 1, point_feats.shape[1]), np.float64)
      np.add.at(means, segments[inside], point_feats[inside])
      labels[inside] = self.classifier.labels(means, pooled=True)[segments[inside]]
    return labels


def load(path: str) -> Segmenter:
  """The segmenter of a model bundle file (`jaxseg.inference.bundle`) or of a run's work
  directory (`config.json`, checkpoints and, after its evaluation, `classifier.npz`).
  InputError naming the path and the fix otherwise."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(path):
    config, variables, found = bundle.read(path)
    return Segmenter(config, variables, found, found.cluster_to_class is not None, path)
  config_file = os.path.join(path, "config.json")
  if not os.path.isfile(config_file):
    raise InputError(path, "no config.json: not a jaxseg run directory",
                     "pass the work directory of a finished training run")
  config = ml_collections.ConfigDict(atomic.read_json(config_file))
  method = get_method(config.method)
  if method.supervised:
    raise InputError(path, f"a {method.title} run: its network is scored by its classifier "
                     "head, and inference reads clustering runs (PointDC, GrowSP) only",
                     "label scans with a PointDC or GrowSP run, or score this one with "
                     "--config.mode=eval")
  if config.eval.get("batch_norm", "running") != "running":
    # Its classifier was fitted on features under recalibrated statistics, which only the
    # bundle its evaluation wrote holds (`jaxseg.eval.batch_norm`).
    exported = os.path.join(path, "model" + bundle.SUFFIX)
    if not os.path.isfile(exported):
      raise InputError(path, "the run was evaluated with recalibrated BatchNorm statistics "
                       "(eval.batch_norm) and has no model bundle holding them",
                       "evaluate it again (--config.mode=eval with this workdir)")
    return load(exported)
  variables, arrays = load_run(path, method.network_phases)
  found = classifier_lib.load(path)
  if found is None:
    centroids = arrays.get(method.primitives_key or "centroids")
    if centroids is None:
      raise InputError(path, "the run has neither an evaluation classifier nor training "
                       "centroids", "evaluate it first: --config.mode=eval with this workdir")
    _LOG.warning("%s was never evaluated: labels are cluster ids of its last training "
                 "clustering, not classes", path)
    found = classifier_lib.Classifier(
        np.asarray(l2_normalize(np.asarray(centroids, np.float32))), None,
        tuple(f"cluster_{i}" for i in range(len(centroids))))
  elif len(found.class_names) != len(class_names(int(config.data.num_classes))):
    raise InputError(path, "classifier.npz does not match the run's data.num_classes",
                     "evaluate the run again (--config.mode=eval)")
  return Segmenter(config, encoder_variables(variables), found,
                   found.cluster_to_class is not None, path)
