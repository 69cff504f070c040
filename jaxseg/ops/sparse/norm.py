"""BatchNorm whose statistics use valid voxels only."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class MaskedBatchNorm(nn.Module):
  """BatchNorm over the valid rows of [B, C, F] features; padding rows output zeros.

  Attributes:
    momentum: running-average decay (flax convention; PyTorch/MinkowskiEngine momentum m
      corresponds to 1 - m, so the reference's 0.02 is 0.98).
    epsilon: added to the variance.
    axis_name: pmap/shard_map axis over which to average the statistics across devices.
  """
  momentum: float = 0.98
  epsilon: float = 1e-5
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x float [B, C, F], mask bool [B, C] -> float [B, C, F]."""
    valid = mask[..., None]
    x = jnp.where(valid, x, 0)
    y = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                     epsilon=self.epsilon, axis_name=self.axis_name)(x, mask=valid)
    return jnp.where(valid, y, 0)
