"""Tests for OTT-JAX Sinkhorn labelling against a float64 numpy log-domain Sinkhorn."""

import jax
import numpy as np
import pytest
from scipy.special import logsumexp

from jaxseg.errors import InputError
from jaxseg.ops import sinkhorn as sk


def _np_sinkhorn(cost, a, b, eps, iters):
  """Float64 log-domain Sinkhorn (g then f updates, zero init); returns the transport plan."""
  cost = cost.astype(np.float64)
  with np.errstate(divide="ignore"):
    log_a, log_b = np.log(a.astype(np.float64)), np.log(b.astype(np.float64))
  f = np.zeros(len(a))
  g = np.zeros(len(b))
  for _ in range(iters):
    g = eps * log_b - eps * logsumexp((f[:, None] - cost) / eps, axis=0)
    f = eps * log_a - eps * logsumexp((g[None, :] - cost) / eps, axis=1)
  return np.exp((f[:, None] + g[None, :] - cost) / eps)


def _data(n=120, k=5, d=8, seed=0):
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(n, d)).astype(np.float32)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  protos = rng.normal(size=(k, d)).astype(np.float32)
  protos /= np.linalg.norm(protos, axis=1, keepdims=True)
  mask = np.ones(n, bool)
  mask[-13:] = False
  return feats, protos, mask


@pytest.mark.parametrize("cost", ["neg_dot", "cosine"])
def test_transport_matches_numpy_reference_and_marginals(cost):
  feats, protos, mask = _data()
  feats[~mask] = np.nan   # Padding may hold garbage.
  eps, iters = 0.1, 40
  out = sk.sinkhorn_labels(feats, protos, mask, epsilon=eps, num_iters=iters, cost=cost)
  valid = feats[mask].astype(np.float64)
  sims = valid @ protos.astype(np.float64).T
  if cost == "cosine":
    sims /= np.linalg.norm(valid, axis=1)[:, None] * np.linalg.norm(protos, axis=1)[None]
  cost_matrix = -sims if cost == "neg_dot" else 1.0 - sims
  a = np.full(mask.sum(), 1.0 / mask.sum())
  b = np.full(len(protos), 1.0 / len(protos))
  want = _np_sinkhorn(cost_matrix, a, b, eps, iters)
  plan = np.asarray(out.transport)
  np.testing.assert_allclose(plan[mask], want, rtol=2e-3, atol=1e-7)
  assert np.all(plan[~mask] == 0)
  np.testing.assert_allclose(plan.sum(0), b, rtol=1e-3)   # g is updated first, f last:
  np.testing.assert_allclose(plan[mask].sum(1), a, rtol=1e-4)  # rows exact, columns close.
  codes = np.asarray(out.codes)
  np.testing.assert_allclose(codes[mask].sum(1), 1.0, rtol=1e-5)
  assert np.all(codes[~mask] == 0)
  np.testing.assert_array_equal(out.labels[mask], want.argmax(1))
  assert np.all(np.asarray(out.labels)[~mask] == -1)
  assert out.labels.dtype == np.int32


def test_custom_marginals_from_cost_matrix():
  rng = np.random.default_rng(1)
  cost = rng.uniform(size=(60, 4)).astype(np.float32)
  mask = np.ones(60, bool)
  mask[:7] = False
  counts = rng.integers(1, 50, 60).astype(np.float32)
  col = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
  eps, iters = 0.05, 200
  out = sk.sinkhorn_labels_from_cost(cost, mask, epsilon=eps, num_iters=iters,
                                     row_weights=counts, col_marginal=col)
  a = counts[mask] / counts[mask].sum()
  want = _np_sinkhorn(cost[mask], a, col, eps, iters)
  plan = np.asarray(out.transport)
  np.testing.assert_allclose(plan[mask], want, rtol=2e-3, atol=1e-7)
  np.testing.assert_allclose(plan.sum(0), col, rtol=1e-3)
  np.testing.assert_allclose(plan[mask].sum(1), a, rtol=1e-4)
  assert np.all(plan[~mask] == 0)


def test_vmap_over_scenes_equals_loop_under_jit():
  scenes = [_data(seed=s) for s in range(3)]
  feats = np.stack([f for f, _, _ in scenes])
  protos = scenes[0][1]
  masks = np.stack([m for _, _, m in scenes])
  masks[1, :50] = False
  fn = jax.jit(jax.vmap(lambda f, m: sk.sinkhorn_labels(f, protos, m, num_iters=30)))
  batched = fn(feats, masks)
  for s in range(3):
    single = sk.sinkhorn_labels(feats[s], protos, masks[s], num_iters=30)
    np.testing.assert_allclose(batched.transport[s], single.transport, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(batched.labels[s], single.labels)


def test_equipartition_gives_near_equal_cluster_sizes():
  rng = np.random.default_rng(2)
  # Imbalanced data: most points lie near the first prototype.
  protos = np.eye(4, 6, dtype=np.float32)
  feats = np.concatenate([protos[0] + 0.3 * rng.normal(size=(700, 6)),
                          0.3 * rng.normal(size=(100, 6))]).astype(np.float32)
  mask = np.ones(len(feats), bool)
  mask[-40:] = False
  out = sk.sinkhorn_labels(feats, protos, mask, epsilon=0.05, num_iters=300)
  sizes = np.bincount(np.asarray(out.labels)[mask], minlength=4)
  assert sizes.sum() == mask.sum()
  expected = mask.sum() / 4
  assert np.all(np.abs(sizes - expected) <= 0.1 * expected), sizes
  # Plain argmax of the similarities is far from balanced on this data.
  assert np.bincount((feats[mask] @ protos.T).argmax(1), minlength=4).max() > 2 * expected


def test_bad_arguments_raise_input_error():
  feats, protos, mask = _data(n=10)
  with pytest.raises(InputError, match="cost"):
    sk.sinkhorn_labels(feats, protos, mask, cost="euclid")
  with pytest.raises(InputError, match="epsilon"):
    sk.sinkhorn_labels(feats, protos, mask, epsilon=0.0)
