"""Flax layers over sparse voxel levels: convs, BasicBlock, the shared encoder stages.

Features are float32 [B, C, F] with the level's bool mask [B, C]; every layer returns zeros
on padding rows. Kernels are initialised like MinkowskiEngine's ResNetBase (He normal).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.ops.sparse import conv
from jaxseg.ops.sparse import kernel_map
from jaxseg.ops.sparse.kernel_map import LevelLink
from jaxseg.ops.sparse.kernel_map import SparseLevel
from jaxseg.ops.sparse.norm import MaskedBatchNorm

_KERNEL_INIT = nn.initializers.he_normal()


def encoder_pyramid(module: nn.Module, coords: jnp.ndarray, mask: jnp.ndarray,
                    level0_kernels: tuple[int, ...], num_coarse: int,
                    coarse_capacities: tuple[int, ...] | None, search_method: str
                    ) -> tuple[list[SparseLevel], list[LevelLink]]:
  """The levels and links an encoder's convs share, built once per call.

  coords int32 [B, C, 3], mask bool [B, C]; level 0 gets kernel maps for `level0_kernels`,
  the `num_coarse` coarser levels for kernel 3. coarse_capacities: static capacities of
  levels 1..num_coarse (None: kernel_map.default_capacities). Overflow of a coarse level is
  sown into the module's 'diagnostics' collection as 'level_overflow' bool [B, num_coarse].
  """
  capacities = None
  if coarse_capacities is not None:
    capacities = (mask.shape[1],) + tuple(coarse_capacities)
  levels, links = kernel_map.build_pyramid(coords, mask, [level0_kernels] + [(3,)] * num_coarse,
                                           capacities, search_method)
  if not module.is_initializing():
    module.sow("diagnostics", "level_overflow", jnp.stack([l.overflow for l in links], -1))
  return levels, links


class SubmanifoldConv(nn.Module):
  """Submanifold conv (odd kernel_size, no bias): [B, C, Ci] -> [B, C, features]."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jnp.ndarray, level: SparseLevel) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT,
                        (self.kernel_size ** 3, x.shape[-1], self.features), jnp.float32)
    if self.kernel_size == 1:
      return jnp.where(level.mask[..., None], x, 0) @ kernel[0]
    return conv.submanifold_conv(x, level.mask, level.neighbours[self.kernel_size], kernel)


class StridedConv(nn.Module):
  """Kernel-2 stride-2 conv (no bias): fine [B, C, Ci] -> coarse [B, P, features]."""
  features: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, fine_mask: jnp.ndarray, link: LevelLink) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT, (8, x.shape[-1], self.features), jnp.float32)
    return conv.strided_conv(x, fine_mask, link, kernel)


class TransposedConv(nn.Module):
  """Kernel-2 stride-2 transposed conv (no bias): coarse [B, P, Ci] -> fine [B, C, features]."""
  features: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, link: LevelLink) -> jnp.ndarray:
    kernel = self.param("kernel", _KERNEL_INIT, (8, x.shape[-1], self.features), jnp.float32)
    return conv.transposed_conv(x, link, kernel)


class BasicBlock(nn.Module):
  """ResNet BasicBlock: conv3-BN-ReLU-conv3-BN + shortcut, ReLU.

  The shortcut is a 1x1 conv + BN when the channel count changes (MinkowskiEngine's
  `downsample`), the identity otherwise.
  """
  features: int
  bn_momentum: float = 0.98
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, level: SparseLevel, train: bool) -> jnp.ndarray:
    """x float [B, C, Ci] -> [B, C, features]."""
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
  def __call__(self, x: jnp.ndarray, level: SparseLevel, train: bool) -> jnp.ndarray:
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
  def __call__(self, x: jnp.ndarray, fine: SparseLevel, link: LevelLink, coarse: SparseLevel,
               train: bool) -> jnp.ndarray:
    """x float [B, C, Ci] on `fine` -> [B, P, features] on `coarse`."""
    out = StridedConv(x.shape[-1])(x, fine.mask, link)
    out = MaskedBatchNorm(self.bn_momentum, axis_name=self.axis_name)(out, coarse.mask, train)
    out = nn.relu(out)
    for _ in range(self.num_blocks):
      out = BasicBlock(self.features, self.bn_momentum, self.axis_name)(out, coarse, train)
    return out
