"""Masked BatchNorm statistics against numpy over the valid rows only."""

import jax
import numpy as np

from jaxseg.ops.sparse.norm import MaskedBatchNorm


def test_statistics_use_valid_rows_only():
  rng = np.random.default_rng(0)
  x = rng.normal(2.0, 3.0, size=(2, 50, 4)).astype(np.float32)
  mask = rng.random((2, 50)) < 0.6
  x[~mask] = np.nan
  bn = MaskedBatchNorm()
  variables = bn.init(jax.random.key(0), x, mask, train=False)
  y, updates = bn.apply(variables, x, mask, train=True, mutable=["batch_stats"])
  valid = x[mask].astype(np.float64)
  mean, var = valid.mean(0), valid.var(0)
  expected = (x.astype(np.float64) - mean) / np.sqrt(var + 1e-5)
  np.testing.assert_allclose(np.asarray(y)[mask], expected[mask], rtol=1e-4, atol=1e-4)
  assert np.all(np.asarray(y)[~mask] == 0)
  stats = updates["batch_stats"]
  np.testing.assert_allclose(stats["mean"], 0.02 * mean, rtol=1e-4)
  np.testing.assert_allclose(stats["var"], 0.98 + 0.02 * var, rtol=1e-4)
  y_eval = bn.apply({"params": variables["params"], **updates}, x, mask, train=False)
  expected_eval = (x - 0.02 * mean) / np.sqrt(0.98 + 0.02 * var + 1e-5)
  np.testing.assert_allclose(np.asarray(y_eval)[mask], expected_eval[mask], rtol=1e-4, atol=1e-4)


def test_cross_device_statistics_pool_all_valid_rows():
  rng = np.random.default_rng(1)
  x = rng.normal(1.0, 2.0, size=(2, 1, 30, 3)).astype(np.float32)   # [devices, B, C, F]
  mask = np.zeros((2, 1, 30), bool)
  mask[0, 0, :25] = True                                             # 25 and 5 valid rows
  mask[1, 0, :5] = True
  bn = MaskedBatchNorm(axis_name="devices")
  variables = bn.init(jax.random.key(0), x[0], mask[0], train=False)
  apply = jax.pmap(lambda a, m: bn.apply(variables, a, m, train=True, mutable=["batch_stats"]),
                   axis_name="devices", devices=jax.devices()[:2])
  y, _ = apply(x, mask)
  valid = x[mask].astype(np.float64)
  expected = (x - valid.mean(0)) / np.sqrt(valid.var(0) + 1e-5)
  np.testing.assert_allclose(np.asarray(y)[mask], expected[mask], rtol=1e-4, atol=1e-4)
