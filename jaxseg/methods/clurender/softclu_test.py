"""SoftClu's loss against a float64 numpy transcription of the reference's PointCluOT, with its
gradient against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import log_softmax, logsumexp
import pytest

from jaxseg.methods.clurender import softclu
from jaxseg.ops import clouds
from jaxseg.ops.sinkhorn import sinkhorn_labels_from_cost


def _numpy_sinkhorn(cost, epsilon, iterations=3000):
  """Log-domain Sinkhorn with uniform marginals, run to convergence; returns N x plan."""
  n, j = cost.shape
  log_a, log_b = np.full(n, -np.log(n)), np.full(j, -np.log(j))
  f, g = np.zeros(n), np.zeros(j)
  for _ in range(iterations):
    f = epsilon * (log_a - logsumexp((g[None] - cost) / epsilon, axis=1))
    g = epsilon * (log_b - logsumexp((f[:, None] - cost) / epsilon, axis=0))
  return n * np.exp((f[:, None] + g[None] - cost) / epsilon)


def _numpy_loss(logits, xyz, features, epsilon, terms, weights=(1e-7, 1e-4), fixed=None):
  """float64 PointCluOT of the valid rows; `fixed` = (targets, mass) held constant (for finite
  differences of the gradient path), else computed."""
  log_s = log_softmax(logits, axis=1)
  s = np.exp(log_s)
  mass = np.maximum(s.sum(0), 1e-4) if fixed is None else fixed[1]
  unit = features / np.linalg.norm(features, axis=1, keepdims=True)
  total, targets_out = 0.0, {}
  for term, weight in zip(("xyz", "feature"), weights):
    if term not in terms:
      continue
    rows = xyz if term == "xyz" else unit
    c = s.T @ rows / mass[:, None]
    if term == "xyz":
      cost = ((rows[:, None] - c[None]) ** 2).sum(-1)
    else:
      c = c / np.linalg.norm(c, axis=1, keepdims=True)
      cost = 2 - 2 * rows @ c.T
    targets = _numpy_sinkhorn(cost, epsilon) if fixed is None else fixed[0][term]
    targets_out[term] = targets
    total += -(targets * log_s).sum(1).mean() + weight * np.abs(c @ c.T - np.eye(len(c))).mean()
  return total, (targets_out, mass)


def _cloud(seed, n=40, j=6, d=5):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(n, j)) * 2
  xyz = rng.normal(size=(n, 3)) + np.repeat(rng.normal(size=(4, 3)) * 2, n // 4, axis=0)
  features = rng.normal(size=(n, d))
  valid = np.ones(n, bool)
  valid[-3:] = False
  return logits, xyz, features, valid


@pytest.mark.parametrize("terms", [("xyz", "feature"), ("xyz",)])
def test_loss_matches_float64_numpy(terms):
  logits, xyz, features, valid = _cloud(0)
  unit = np.asarray(clouds.unit_sphere(xyz, valid), np.float64)
  padded = [np.where(valid[:, None], a, np.nan).astype(np.float32) for a in (logits, features)]
  loss, parts = jax.jit(lambda l, x, f: softclu.cluster_loss(
      l, x, f, valid, epsilon=0.05, iterations=400, terms=terms))(padded[0], unit, padded[1])
  want, _ = _numpy_loss(logits[valid], unit[valid], features[valid], 0.05, terms)
  np.testing.assert_allclose(float(loss), want, rtol=2e-4)
  assert set(parts) == {p for t in terms for p in (t, f"{t}_orthogonality")}


def test_gradient_matches_finite_differences_with_targets_held():
  logits, xyz, features, valid = _cloud(2)
  unit = np.asarray(clouds.unit_sphere(xyz, valid), np.float64)
  grad = np.asarray(jax.grad(lambda l: softclu.cluster_loss(
      l, unit, features, valid, epsilon=0.05, iterations=400)[0])(logits.astype(np.float32)))
  assert np.all(grad[~valid] == 0)
  v = valid
  _, fixed = _numpy_loss(logits[v], unit[v], features[v], 0.05, softclu.TERMS)
  direction = np.random.default_rng(3).normal(size=logits[v].shape)
  eps = 1e-5
  numeric = (_numpy_loss(logits[v] + eps * direction, unit[v], features[v], 0.05,
                         softclu.TERMS, fixed=fixed)[0]
             - _numpy_loss(logits[v] - eps * direction, unit[v], features[v], 0.05,
                           softclu.TERMS, fixed=fixed)[0]) / (2 * eps)
  np.testing.assert_allclose(np.sum(grad[v] * direction), numeric, rtol=1e-3)


def test_reference_epsilon_gives_near_hard_targets_moving_toward_equipartition():
  """At the reference's epsilon 1e-3 the targets are nearly one-hot. Its 25 iterations leave
  them between nearest-centroid sizes and equipartition (measured: 7-29 points per cluster
  against 6-32 nearest, 15 each after 1,000 iterations); the reference runs the same."""
  _, xyz, _, _ = _cloud(4, n=120, j=8)
  unit = clouds.unit_sphere(xyz, np.ones(len(xyz), bool))
  cost = jnp.sum((unit[:, None] - unit[::15][None]) ** 2, -1)
  nearest = np.bincount(np.argmin(np.asarray(cost), 1), minlength=8)
  spread = {}
  for iterations in (25, 1000):
    codes = np.asarray(sinkhorn_labels_from_cost(cost, epsilon=1e-3,
                                                 num_iters=iterations).codes)
    assert np.mean(codes.max(1)) > 0.95
    sizes = np.bincount(codes.argmax(1), minlength=8)
    spread[iterations] = sizes.max() - sizes.min()
  assert spread[1000] <= 1 < spread[25] < nearest.max() - nearest.min()


def test_zero_feature_rows_keep_gradients_finite():
  """A valid point with an all-zero feature (and so a zero-length row to normalise) must not
  turn the gradient into NaN."""
  logits, xyz, features, valid = _cloud(5)
  features[0] = 0.0
  unit = clouds.unit_sphere(xyz, valid)
  grads = jax.grad(lambda l, f: softclu.cluster_loss(l, unit, f, valid, epsilon=0.05,
                                                     iterations=50)[0], argnums=(0, 1))(
      logits.astype(np.float32), features.astype(np.float32))
  assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
