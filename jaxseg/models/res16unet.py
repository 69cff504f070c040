"""MinkUNet-style Res16UNet14 / 18 / 34 sparse voxel encoders (MinkowskiEngine's res16unet).

  stem       conv k^3 -> init_dim, BN, ReLU                            (level 0)
  encoder    4 stages: strided conv k2s2, BN, ReLU, layers[s] BasicBlocks to planes[s]
  decoder    4 stages: transposed conv k2s2 to planes[4+s], BN, ReLU, concatenation with the
             encoder output of the same level (the stem output at level 0), layers[4+s]
             BasicBlocks to planes[4+s]
  final      linear with bias to out_dim: float32 [G, C, out_dim].

Channel plan: MinkowskiEngine's Res16UNetBase PLANES (32, 64, 128, 256, 256, 128, 96, 96), the
plan of Res16UNet34C (PointDC's unused copy / the common ScanNet baseline). MinkowskiEngine's
"A" variants use other decoder widths (e.g. 14A/18A: (..., 128, 128, 96, 96), 34A:
(..., 256, 128, 64, 64)); pass `planes` to get them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.models import sparse_resnet
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.rows import on_rows
from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse.norm import MaskedBatchNorm


class Res16UNet(nn.Module):
  """Sparse voxel U-Net; subclasses fix `layers`.

  Attributes:
    layers: BasicBlocks per stage, 4 encoder then 4 decoder stages.
    out_dim: output channels per voxel.
    planes: channels per stage, 4 encoder then 4 decoder.
    init_dim: stem channels.
    stem_kernel_size: odd stem kernel size (MinkowskiEngine's conv1_kernel_size; 5 as in
      PointDC / GrowSP).
    bn_momentum: flax BatchNorm momentum (0.98 = PyTorch 0.02).
    axis_name: device axis for cross-device BatchNorm statistics.
    dtype: compute dtype (float32 or bfloat16; parameters stay float32).
  """
  layers: tuple[int, ...] = (2, 2, 2, 2, 2, 2, 2, 2)
  out_dim: int = 128
  planes: tuple[int, ...] = (32, 64, 128, 256, 256, 128, 96, 96)
  init_dim: int = 32
  stem_kernel_size: int = 5
  bn_momentum: float = 0.98
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def level_kernels(self) -> tuple[tuple[int, ...], ...]:
    """Submanifold kernel sizes per level (the input of `geometry.GeometrySpec`)."""
    return (tuple(sorted({self.stem_kernel_size, 3})),) + ((3,),) * 4

  @nn.compact
  def __call__(self, geometry: geo.Geometry, feats: jnp.ndarray, train: bool) -> jnp.ndarray:
    """feats float [G, C, F] on level 0 -> float32 [G, C, out_dim].

    Padding rows (beyond each level's count) may hold anything, NaN included; they output
    zeros.
    """
    if len(self.layers) != 8 or len(self.planes) != 8:
      raise ValueError(f"Res16UNet needs 8 layers and 8 planes, got {self.layers} and "
                       f"{self.planes}")
    levels = geometry.levels
    x = sparse_resnet.ConvBNReLU(self.init_dim, self.stem_kernel_size, self.bn_momentum,
                                 self.axis_name, name="stem")(
                                     geo.masked_input(feats, levels[0], self.dtype), levels[0],
                                     train)
    skips = [x]
    for s in range(4):
      x = sparse_resnet.DownStage(self.planes[s], self.layers[s], self.bn_momentum,
                                  self.axis_name, name=f"down{s + 1}")(x, geometry, s, train)
      skips.append(x)
    skips.pop()  # The deepest output is the decoder's input, not a skip.

    for s in range(4):
      level = 3 - s
      features = self.planes[4 + s]
      x = sparse_resnet.TransposedConv(features, name=f"up{s + 1}_conv")(x, geometry, level)
      x = MaskedBatchNorm(self.bn_momentum, axis_name=self.axis_name, name=f"up{s + 1}_bn")(
          x, levels[level].mask, train)
      x = jnp.concatenate([nn.relu(x), skips[level]], axis=-1)
      for b in range(self.layers[4 + s]):
        x = sparse_resnet.BasicBlock(features, self.bn_momentum, self.axis_name,
                                     name=f"up{s + 1}_block{b + 1}")(x, levels[level], train)
    out = on_rows(nn.Dense(self.out_dim, dtype=self.dtype, param_dtype=jnp.float32,
                           name="final"), x)
    return jnp.where(levels[0].mask[..., None], out.astype(jnp.float32), 0.0)


@ENCODERS.register("res16unet14")
class Res16UNet14(Res16UNet):
  layers: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1, 1)


@ENCODERS.register("res16unet18")
class Res16UNet18(Res16UNet):
  layers: tuple[int, ...] = (2, 2, 2, 2, 2, 2, 2, 2)


@ENCODERS.register("res16unet34")
class Res16UNet34(Res16UNet):
  layers: tuple[int, ...] = (2, 3, 4, 6, 2, 2, 2, 2)
