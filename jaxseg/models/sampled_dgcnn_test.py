"""DGCNN on voxel batches: scenes of a pack never mix, NaN padding changes nothing, every voxel
takes its nearest sample's features (scipy's k-d tree as the reference), and the network
trains through VoxelNet on a pipeline batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.spatial import cKDTree

from jaxseg.data import pipeline
from jaxseg.models import sampled_dgcnn
from jaxseg.models.voxel_net import VoxelNet, geometry_spec, net_fields
from jaxseg.ops.sparse import geometry as geo

_SAMPLES = 24


def _encoder():
  return sampled_dgcnn.SampledDGCNN(out_dim=8, points_per_scene=_SAMPLES, k=4,
                                    edge_channels=(8, 8), global_dim=16, head_channels=(16,))


def _scene(points, seed):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 20, (points, 3)).astype(np.float32), rng.normal(
      size=(points, 6)).astype(np.float32)


def _pack(scenes, capacity, width):
  """[1, ...] inputs of the scenes laid side by side (slots 0, 1, ...), NaN padding rows."""
  coords = np.full((capacity, 3), np.nan, np.float32)
  feats = np.full((capacity, 6), np.nan, np.float32)
  rows = np.full((len(scenes), width), capacity, np.int32)
  start = 0
  for slot, (xyz, f) in enumerate(scenes):
    n = len(xyz)
    coords[start:start + n], feats[start:start + n] = xyz + 100 * slot, f
    rows[slot, :n] = start + np.arange(n)
    start += n
  return coords[None], feats[None], rows[None]


def _init(model, inputs, seed):
  return jax.jit(lambda *a: model.init(jax.random.key(seed), *a, False))(*inputs)


def _run(model, variables, inputs):
  return jax.jit(lambda v, *a: model.apply(v, *a, False))(variables, *inputs)


def test_scenes_of_a_pack_do_not_mix_and_padding_is_inert():
  model = _encoder()
  first, second = _scene(60, 0), _scene(15, 1)       # the second is smaller than M
  packed = _pack([first, second], 96, 64)
  variables = _init(model, packed, 0)
  features, sampled = _run(model, variables, packed)
  alone, alone_sampled = _run(model, variables, _pack([first], 70, 60))
  np.testing.assert_allclose(features[0, :60], alone[0, :60], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(sampled[0, :60], alone_sampled[0, :60])
  assert int(np.sum(sampled[0, :60])) == _SAMPLES and np.all(sampled[0, 60:75])
  assert not np.any(sampled[0, 75:]) and np.all(np.asarray(features)[0, 75:] == 0)
  assert np.all(np.isfinite(features))


def test_every_voxel_takes_its_nearest_samples_features():
  model = _encoder()
  inputs = _pack([_scene(80, 2)], 80, 80)
  features, sampled = (np.asarray(a)[0] for a in _run(model, _init(model, inputs, 1), inputs))
  picks = np.flatnonzero(sampled)
  _, nearest = cKDTree(inputs[0][0][picks]).query(inputs[0][0])
  np.testing.assert_array_equal(features, features[picks[nearest]])
  assert len({tuple(f) for f in features[picks]}) == _SAMPLES    # the picks differ


def test_trains_through_voxel_net_on_a_pipeline_batch():
  spec = geometry_spec("dgcnn")
  assert spec.level_kernels == ((),) and spec.scene_rows
  config = pipeline.PipelineConfig(voxel_size=0.05, geometry=spec)
  batch = {k: v for k, v in pipeline.dummy_batch(config).items() if k in net_fields(spec)}
  net = VoxelNet(spec, encoder="dgcnn", out_dim=8, cluster_dim=4)
  variables = jax.jit(lambda b: net.init(jax.random.key(0), b, train=False))(batch)
  target = jax.random.normal(jax.random.key(1), (1, batch[geo.mask_key(0)].shape[1], 8))

  def loss(params, b):
    out = net.apply({**variables, "params": params}, b, train=True, mutable=["batch_stats"])[0]
    mask = b[geo.mask_key(0)][..., None]
    return jnp.sum(jnp.where(mask, (out["voxel_features"] - target) ** 2, 0.0))

  opt = optax.adam(1e-2)
  step = jax.jit(lambda p, s, b: (lambda l, g: (l, *opt.update(g, s, p)))(
      *jax.value_and_grad(loss)(p, b)))
  params, state = variables["params"], opt.init(variables["params"])
  losses = []
  for _ in range(20):
    value, updates, state = step(params, state, batch)
    params = optax.apply_updates(params, updates)
    losses.append(float(value))
  assert losses[-1] < 0.5 * losses[0]
