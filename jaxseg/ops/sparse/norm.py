"""BatchNorm whose statistics use valid voxels only."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# The collection where train-mode BatchNorm layers sow (count [1], mean [F], var [F]).
MOMENTS = "batch_moments"


class MaskedBatchNorm(nn.Module):
  """BatchNorm over the valid rows of [..., F] features; padding rows output zeros.

  Statistics are two-pass (mean, then mean squared deviation) over the valid rows of the whole
  batch; with `axis_name` the sums and counts are added across devices first, so every device
  uses the statistics of all valid rows (devices with more voxels weigh more). Running
  averages use the biased batch variance (flax convention).

  Attributes:
    momentum: running-average decay (flax convention; PyTorch/MinkowskiEngine momentum m
      corresponds to 1 - m, so the reference's 0.02 is 0.98).
    epsilon: added to the variance.
    axis_name: pmap/shard_map axis over which to pool the statistics across devices.
  """
  momentum: float = 0.98
  epsilon: float = 1e-5
  axis_name: str | None = None

  def _pooled_sum(self, x: jnp.ndarray) -> jnp.ndarray:
    total = jnp.sum(x, axis=0)
    return total if self.axis_name is None else jax.lax.psum(total, self.axis_name)

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x float [..., F], mask bool [...] -> [..., F] in x's dtype with zero padding rows
    (statistics and the normalisation itself in float32; padding rows of x may hold
    anything)."""
    shape, features, dtype = x.shape, x.shape[-1], x.dtype
    # Rows flattened to [N, F]: XLA:CPU reduces [N, F] over N fast, but the reductions that
    # autodiff makes of [1, C, F] (over C alone) ran ~10x slower in the backward pass.
    x, valid = x.reshape(-1, features), mask.reshape(-1, 1)
    x = jnp.where(valid, x, 0).astype(jnp.float32)
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    if train:
      count = jnp.maximum(self._pooled_sum(valid.astype(jnp.float32)), 1.0)
      mean = self._pooled_sum(x) / count
      var = self._pooled_sum(jnp.where(valid, (x - mean) ** 2, 0)) / count
      if not self.is_initializing():
        # The batch's moments, kept only where the caller makes the collection mutable
        # (`jaxseg.eval.batch_norm` pools them over a split).
        self.sow(MOMENTS, "moments", (count, mean, var))
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
    else:
      mean, var = running_mean.value, running_var.value
    y = (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
    return jnp.where(valid, y, 0).astype(dtype).reshape(shape)
