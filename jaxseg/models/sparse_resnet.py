"""Flax layers over a batch's sparse geometry: convs, BasicBlock, the shared encoder stages.

Features are [G, C, F] per level (G packs, C the level's capacity) in the encoder's compute
dtype; every layer takes and returns zeros on padding rows (the encoders mask their raw input
once). Parameters are float32
(the optimizer state too); with `dtype=bfloat16` the convs and linear layers run in bfloat16
with float32 accumulation and BatchNorm statistics stay float32. Kernels are initialised like
MinkowskiEngine's ResNetBase (He normal).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse.norm import MaskedBatchNorm

_KERNEL_INIT = nn.initializers.he_normal()


class SubmanifoldConv(nn.Module):
  """Submanifold conv (odd kernel_size, no bias): [G, C, Ci] -> [G, C, features]."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jnp.ndarray, level: geo.Level) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT,
                        (self.kernel_size ** 3, x.shape[-1], self.features), jnp.float32)
    if self.kernel_size == 1:
      return jnp.dot(x, kernel[0].astype(x.dtype),
                     preferred_element_type=jnp.float32).astype(x.dtype)
    return geo.submanifold_conv(x, level, kernel)


class StridedConv(nn.Module):
  """Kernel-2 stride-2 conv (no bias) from level `fine` to fine + 1."""
  features: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, geometry: geo.Geometry, fine: int) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT, (8, x.shape[-1], self.features), jnp.float32)
    return geo.strided_conv(x, geometry, fine, kernel)


class TransposedConv(nn.Module):
  """Kernel-2 stride-2 transposed conv (no bias) from level fine + 1 back to `fine`."""
  features: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, geometry: geo.Geometry, fine: int) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT, (8, x.shape[-1], self.features), jnp.float32)
    return geo.transposed_conv(x, geometry, fine, kernel)


class BasicBlock(nn.Module):
  """ResNet BasicBlock: conv3-BN-ReLU-conv3-BN + shortcut, ReLU.

  The shortcut is a 1x1 conv + BN when the channel count changes (MinkowskiEngine's
  `downsample`), the identity otherwise.
  """
  features: int
  bn_momentum: float = 0.98
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, level: geo.Level, train: bool) -> jnp.ndarray:
    """x [G, C, Ci] -> [G, C, features]."""
    norm = lambda: MaskedBatchNorm(self.bn_momentum, axis_name=self.axis_name)
    out = SubmanifoldConv(self.features, 3)(x, level)
    out = nn.relu(norm()(out, level.mask, train))
    out = SubmanifoldConv(self.features, 3)(out, level)
    out = norm()(out, level.mask, train)
    shortcut = x
    if x.shape[-1] != self.features:
      shortcut = SubmanifoldConv(self.features, 1)(x, level)
      shortcut = norm()(shortcut, level.mask, train)
    return nn.relu(out + shortcut)


class ConvBNReLU(nn.Module):
  """Submanifold conv -> masked BN -> ReLU on one level."""
  features: int
  kernel_size: int
  bn_momentum: float = 0.98
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, level: geo.Level, train: bool) -> jnp.ndarray:
    out = SubmanifoldConv(self.features, self.kernel_size)(x, level)
    out = MaskedBatchNorm(self.bn_momentum, axis_name=self.axis_name)(out, level.mask, train)
    return nn.relu(out)


class DownStage(nn.Module):
  """Strided conv (channels kept) -> BN -> ReLU -> `num_blocks` BasicBlocks to `features`.

  This is one encoder stage of MinkowskiEngine's Res16UNet / GrowSP's Res16FPN
  (convNpMs2, bnN, blockN).
  """
  features: int
  num_blocks: int
  bn_momentum: float = 0.98
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, geometry: geo.Geometry, fine: int,
               train: bool) -> jnp.ndarray:
    """x [G, C, Ci] at level `fine` -> [G, P, features] at level fine + 1."""
    coarse = geometry.levels[fine + 1]
    out = StridedConv(x.shape[-1])(x, geometry, fine)
    out = MaskedBatchNorm(self.bn_momentum, axis_name=self.axis_name)(out, coarse.mask, train)
    out = nn.relu(out)
    for _ in range(self.num_blocks):
      out = BasicBlock(self.features, self.bn_momentum, self.axis_name)(out, coarse, train)
    return out
