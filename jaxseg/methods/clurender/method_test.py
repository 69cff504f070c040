"""SoftClu's step loss on a pack of scenes: each scene's loss equals the loss of that scene
alone (its own rows, its own unit sphere), whatever else the pack holds; config checks; the
view sampler's scenes with posed frames (the built dataset's list, else one read of each
record)."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import config_defaults
from jaxseg.errors import InputError
from jaxseg.methods.clurender import method, softclu
from jaxseg.ops import clouds


@jax.jit
def _alone_loss(logits, coords, features):
  """SoftClu's loss of one scene given alone (its rows only, its own unit sphere)."""
  alone = jnp.ones(logits.shape[0], bool)
  return softclu.cluster_loss(logits, clouds.unit_sphere(coords.astype(np.float32), alone),
                              features, alone, epsilon=0.05, iterations=25)


def test_each_scene_of_a_pack_is_its_own_cloud():
  c = config_defaults.clurender_config()
  c.epsilon, c.sinkhorn_iterations = 0.05, 25
  rng = np.random.default_rng(0)
  voxels, clusters = 40, 5
  scene = np.array([0] * 20 + [1] * 15 + [-1] * 5, np.int32)
  logits = rng.normal(size=(voxels, clusters)).astype(np.float32)
  features = rng.normal(size=(voxels, 8)).astype(np.float32)
  coords = rng.integers(0, 30, (voxels, 3)).astype(np.int32)
  coords[scene == 1] += 100                                    # placed beside scene 0
  logits[scene < 0], features[scene < 0] = np.nan, np.nan
  losses, present = jax.jit(lambda l, f, x, s: method.scene_losses(l, f, x, s, 3, c))(
      logits, features, coords, scene)
  np.testing.assert_array_equal(present, [True, True, False])
  assert float(losses[2]) == 0.0
  for slot in (0, 1):
    rows = scene == slot
    want, _ = _alone_loss(logits[rows], coords[rows], features[rows])
    np.testing.assert_allclose(float(losses[slot]), float(want), rtol=1e-5)


def test_config_problems_name_the_key():
  config = config_defaults.base_config(name="x", data=config_defaults.data_config(
      fmt="synthetic", num_classes=20, voxel_size=0.05, smoothness_deg=5.0))
  assert method.config_problems(config) == []
  config.clurender.terms = ("rgb",)
  config.clurender.clusters = 1
  config.clurender.views = -1
  config.clurender.image_loss = "l2"
  config.clurender.render.lam = 2.0
  config.clurender.render.ot_relaxation = 1.9
  config.clurender.render.ot_solver = "exact"
  problems = method.config_problems(config)
  assert any("clurender.terms" in p for p in problems)
  assert any("clurender.clusters=1" in p for p in problems)
  assert any("clurender.views=-1" in p for p in problems)
  assert any("clurender.image_loss='l2'" in p for p in problems)
  assert any("lam" in p for p in problems)
  assert any("ot_relaxation=1.9" in p for p in problems)
  assert any("ot_solver='exact'" in p for p in problems)


class _PointEncoderNet:
  """Stands in for a VoxelNet on a point encoder: fixed outputs with the `voxel_sampled` mask
  `sampled_dgcnn` adds."""

  def __init__(self, out):
    self.out = out

  def apply(self, variables, batch, train, mutable):
    del batch, train, mutable
    return self.out, {"batch_stats": variables["batch_stats"]}


def test_a_point_encoders_loss_sees_its_samples_only():
  c = config_defaults.clurender_config()
  c.epsilon, c.sinkhorn_iterations, c.views = 0.05, 25, 0
  rng = np.random.default_rng(1)
  voxels, clusters = 30, 4
  logits = rng.normal(size=(1, voxels, clusters)).astype(np.float32)
  features = rng.normal(size=(1, voxels, 8)).astype(np.float32)
  coords = rng.integers(0, 30, (1, voxels, 3)).astype(np.int32)
  sampled = rng.random((1, voxels)) < 0.5
  batch = {"point_scene": np.zeros((1, voxels), np.int32),
           "point_to_voxel": np.arange(voxels, dtype=np.int32)[None],
           "point_mask": np.ones((1, voxels), bool), "level0_mask": np.ones((1, voxels), bool),
           "scene_index": np.array([[0]], np.int32), "voxel_coords": coords}
  net = _PointEncoderNet({"voxel_cluster_logits": logits, "voxel_features": features,
                          "voxel_sampled": sampled})
  loss_fn = method.make_loss_fn(lambda **_: net, c)
  loss, count, _ = jax.jit(lambda b: loss_fn({}, {"batch_stats": {}}, b, None, None))(batch)
  rows = sampled[0]
  want, _ = _alone_loss(logits[0][rows], coords[0][rows], features[0][rows])
  np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
  assert float(count) == 1.0


class _Records:
  """A split's records: `len` is free, reading one is counted."""

  def __init__(self, poses):
    self.poses, self.reads = poses, 0

  def __len__(self):
    return len(self.poses)

  def __getitem__(self, i):
    self.reads += 1
    return {"name": f"scene{i}".encode(), "frames": {"poses": self.poses[i]}}


def _context(records, listed):
  data = types.SimpleNamespace(source=lambda split: records, handle=types.SimpleNamespace(
      posed_scenes=lambda split: listed))
  config = config_defaults.base_config(name="x", data=config_defaults.data_config(
      fmt="synthetic", num_classes=20, voxel_size=0.05, smoothness_deg=5.0))
  return types.SimpleNamespace(config=config, data=data)


def test_view_sampler_reads_the_built_list_or_else_every_record_once():
  nan = np.full((1, 4, 4), np.nan, np.float32)
  records = _Records([np.eye(4, dtype=np.float32)[None], np.zeros((0, 4, 4), np.float32), nan])
  assert method.view_sampler(_context(records, ["scene0"])) is not None
  assert records.reads == 0                                   # the dataset listed them
  assert method.view_sampler(_context(records, None)) is not None
  assert records.reads == 3                                   # an older dataset: one pass
  with pytest.raises(InputError, match="none of the 3 training scenes has posed"):
    method.view_sampler(_context(_Records([nan] * 3), None))
  with pytest.raises(InputError, match="none of the 3 training scenes has posed"):
    method.view_sampler(_context(records, []))
