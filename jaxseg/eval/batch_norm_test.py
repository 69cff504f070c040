"""BatchNorm recalibration against float64 numpy population statistics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.eval import batch_norm
from jaxseg.ops.sparse.norm import MOMENTS, MaskedBatchNorm


class _TwoLayers(nn.Module):
  """Dense -> masked BatchNorm -> ReLU -> Dense -> masked BatchNorm, on [B, C, F] rows."""

  @nn.compact
  def __call__(self, x, mask, train):
    x = nn.relu(MaskedBatchNorm(name="bn1")(nn.Dense(4, name="fc1")(x), mask, train))
    return MaskedBatchNorm(name="bn2")(nn.Dense(3, name="fc2")(x), mask, train)


def _numpy_population(variables, batches):
  """float64 numpy: each layer's mean and biased variance over the valid rows of every batch,
  each batch normalised by its own statistics in front of the second layer."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  first, second = [], []
  for x, mask in batches:
    rows = np.asarray(x, np.float64)[np.asarray(mask)]
    h1 = rows @ p["fc1"]["kernel"] + p["fc1"]["bias"]
    normed = (h1 - h1.mean(0)) / np.sqrt(h1.var(0) + 1e-5) * p["bn1"]["scale"] + p["bn1"]["bias"]
    h2 = np.maximum(normed, 0) @ p["fc2"]["kernel"] + p["fc2"]["bias"]
    first.append(h1)
    second.append(h2)
  return {name: (np.concatenate(h).mean(0), np.concatenate(h).var(0))
          for name, h in (("bn1", first), ("bn2", second))}


def test_recalibrated_statistics_are_the_population_moments_of_the_split():
  rng = np.random.default_rng(0)
  batches = []
  for b in range(3):   # unequal valid counts and shifted inputs per batch
    x = rng.normal(loc=b, scale=1 + b, size=(2, 16, 5)).astype(np.float32)
    mask = rng.random((2, 16)) < 0.3 + 0.2 * b
    batches.append((jnp.asarray(x), jnp.asarray(mask)))
  net = _TwoLayers()
  variables = net.init(jax.random.key(0), *batches[0], train=False)

  @jax.jit
  def moments_of(batch):
    _, state = net.apply(variables, *batch, train=True, mutable=["batch_stats", MOMENTS])
    return state[MOMENTS]

  result = batch_norm.recalibrated(moments_of, variables, batches)
  expected = _numpy_population(variables, batches)
  for name, (mean, var) in expected.items():
    np.testing.assert_allclose(result["batch_stats"][name]["mean"], mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["batch_stats"][name]["var"], var, rtol=1e-4, atol=1e-5)
  # Only the statistics change; the initial running averages were (0, 1).
  assert jax.tree.all(jax.tree.map(np.array_equal, result["params"], variables["params"]))
  assert not np.allclose(expected["bn1"][0], 0.0)


def test_statistics_for_a_layer_the_network_lacks_are_refused():
  variables = {"params": {}, "batch_stats": {"bn1": {"mean": np.zeros(2), "var": np.ones(2)}}}
  with pytest.raises(KeyError, match="bn9"):
    batch_norm.with_statistics(variables, {("bn9",): (np.zeros(2), np.ones(2))})
