"""The prototype bank against a float64 numpy transcription of SwAV's Sinkhorn and the
momentum update, and a check that prototypes move toward their class's features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.methods.coarse3d import prototypes


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _numpy_swav(sims, epsilon, iterations):
  """SwAV's distributed_sinkhorn on one class's [B, J] similarities (float64)."""
  q = np.exp(sims / epsilon).T                      # J x B
  num_prototypes, rows = q.shape
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= num_prototypes
    q /= q.sum(axis=0, keepdims=True)
    q /= rows
  return (q * rows).T


def _numpy_update(bank, feats, member, correct, gumbel, momentum, epsilon, iterations):
  """ProtoSeg's prototype_learning: Sinkhorn over every row of the class, then only the
  correctly predicted rows move their assigned prototypes."""
  bank = bank.astype(np.float64).copy()
  for k in range(bank.shape[0]):
    rows = np.flatnonzero(member == k)
    if rows.size == 0:
      continue
    plan = _numpy_swav(feats[rows] @ bank[k].T, epsilon, iterations)
    choice = np.argmax(plan + gumbel[rows], axis=1)
    for j in range(bank.shape[1]):
      assigned = feats[rows[(choice == j) & correct[rows]]]
      if len(assigned):
        mean = _unit(assigned.sum(0))
        bank[k, j] = _unit(momentum * bank[k, j] + (1 - momentum) * mean)
  return bank


def test_sinkhorn_plans_match_swav_per_class():
  rng = np.random.default_rng(0)
  sims = rng.uniform(-1, 1, (50, 4))
  member = rng.integers(-1, 3, 50)
  plans = np.asarray(prototypes.sinkhorn_plans(jnp.asarray(sims, jnp.float32),
                                               jnp.asarray(member), 3, epsilon=0.5,
                                               iterations=3))
  for k in range(3):
    rows = member == k
    np.testing.assert_allclose(plans[rows], _numpy_swav(sims[rows], 0.5, 3), rtol=2e-4,
                               atol=1e-6)
  assert np.all(plans[member < 0] == 0)


@pytest.mark.parametrize("max_rows", [None, 40, 12])
def test_bank_update_matches_numpy(max_rows):
  """Also gathering the rows taking part first (max_rows 40 holds them all, 12 does not: then
  every row is used)."""
  rng = np.random.default_rng(1)
  bank = _unit(rng.normal(size=(3, 5, 8)))
  feats = _unit(rng.normal(size=(60, 8)))
  member = rng.integers(-1, 3, 60)
  member[member == 2] = -1                           # class 2 gets no rows: it stays
  member[0] = 1                       # (the gathered rows' filler repeats row 0: it must not count)
  correct = rng.random(60) < 0.6
  gumbel = rng.gumbel(size=(60, 5))
  new = prototypes.update_bank(jnp.asarray(bank, jnp.float32), jnp.asarray(feats, jnp.float32),
                               jnp.asarray(member), jnp.asarray(correct),
                               jnp.asarray(gumbel, jnp.float32), momentum=0.9, epsilon=0.5,
                               iterations=3, max_rows=max_rows)
  assert 12 < np.sum(member >= 0) <= 40
  expected = _numpy_update(bank, feats, member, correct, gumbel, 0.9, 0.5, 3)
  np.testing.assert_allclose(np.asarray(new), expected, atol=2e-5)
  np.testing.assert_array_equal(np.asarray(new)[2], np.asarray(bank, np.float32)[2])


def test_prototypes_move_toward_their_class_features():
  rng = np.random.default_rng(2)
  centres = _unit(rng.normal(size=(4, 16)))
  bank = prototypes.init_bank(jax.random.key(0), num_classes=4, per_class=3, dim=16)
  before = np.einsum("kjd,kd->kj", np.asarray(bank), centres).mean()
  update = jax.jit(lambda b, f, m, n: prototypes.update_bank(
      b, f, m, jnp.ones(m.shape, bool), n, momentum=0.9))
  for _ in range(40):
    member = rng.integers(0, 4, 64)
    feats = _unit(centres[member] + 0.3 * rng.normal(size=(64, 16)))
    bank = update(bank, jnp.asarray(feats, jnp.float32), jnp.asarray(member),
                  jnp.asarray(rng.gumbel(size=(64, 3)), jnp.float32))
  after = np.einsum("kjd,kd->kj", np.asarray(bank), centres)
  assert before < 0.3 and after.min() > 0.9, (before, after)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(bank), axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("max_rows", [None, 14, 10])
def test_sharded_update_over_four_devices_equals_one_device(max_rows):
  """shard_map with the rows split over 4 devices (class sums and Sinkhorn normalisers added
  over devices) gives the single-device update; with max_rows 10 some devices' rows fit and
  others' do not, and all take the same path."""
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxseg.data.sharding import data_mesh  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  bank = jnp.asarray(_unit(rng.normal(size=(3, 4, 8))), jnp.float32)
  feats = jnp.asarray(_unit(rng.normal(size=(64, 8))), jnp.float32)
  member = jnp.asarray(rng.integers(-1, 3, 64))
  correct = jnp.asarray(rng.random(64) < 0.7)
  noise = jnp.asarray(rng.gumbel(size=(64, 4)), jnp.float32)
  kwargs = {"momentum": 0.5, "epsilon": 0.3, "iterations": 3}
  single = prototypes.update_bank(bank, feats, member, correct, noise, **kwargs)
  mesh = data_mesh()
  sharded = jax.jit(jax.shard_map(
      lambda b, f, m, c, n: prototypes.update_bank(b, f, m, c, n, axis_name="data",
                                                   max_rows=max_rows, **kwargs),
      mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data"), P("data")), out_specs=P(),
      check_vma=False))(bank, feats, member, correct, noise)
  per_device = np.sum(np.asarray(member).reshape(4, -1) >= 0, axis=1)
  if max_rows == 10:
    assert per_device.min() <= 10 < per_device.max(), per_device
  np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), atol=1e-6)
