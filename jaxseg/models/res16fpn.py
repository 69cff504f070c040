"""Res16FPN18: the voxel encoder of PointDC / GrowSP (their `models/fpn.py`).

  stem     conv 5^3 -> 32 channels, BN, ReLU                      (level 0, the input voxels)
  stage s  strided conv k2s2 (channels kept), BN, ReLU,
           two BasicBlocks to planes[s] = 32 / 64 / 128 / 256      (level s = 1..4, stride 2^s)
  head     per stage a bias-free linear to 128 channels, brought back to the input voxels by
           trilinear interpolation from the 8 surrounding stage cells (MinkowskiEngine's
           `interpolate`, as the reference does) and summed: float32 [G, C, 128].

BatchNorm momentum is the reference's 0.02 in PyTorch terms (flax 0.98).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.models import sparse_resnet
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.sparse import geometry as geo


@ENCODERS.register("res16fpn18")
class Res16FPN18(nn.Module):
  """Sparse voxel FPN encoder.

  Attributes:
    out_dim: output channels per voxel (128 in the reference).
    init_dim: stem channels.
    planes: channels of the four stages.
    layers: BasicBlocks per stage.
    stem_kernel_size: odd stem kernel size (5 in the reference).
    bn_momentum: flax BatchNorm momentum.
    axis_name: device axis for cross-device BatchNorm statistics (None: per device).
    dtype: compute dtype (float32 or bfloat16; parameters stay float32).
  """
  out_dim: int = 128
  init_dim: int = 32
  planes: tuple[int, ...] = (32, 64, 128, 256)
  layers: tuple[int, ...] = (2, 2, 2, 2)
  stem_kernel_size: int = 5
  bn_momentum: float = 0.98
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def level_kernels(self) -> tuple[tuple[int, ...], ...]:
    """Submanifold kernel sizes per level (the input of `geometry.GeometrySpec`)."""
    return ((self.stem_kernel_size,),) + ((3,),) * len(self.planes)

  @nn.compact
  def __call__(self, geometry: geo.Geometry, feats: jnp.ndarray, train: bool) -> jnp.ndarray:
    """feats float [G, C, F] on level 0 -> float32 [G, C, out_dim].

    Padding rows (beyond each level's count) may hold anything, NaN included; they output
    zeros.
    """
    levels = geometry.levels
    x = sparse_resnet.ConvBNReLU(self.init_dim, self.stem_kernel_size, self.bn_momentum,
                                 self.axis_name, name="stem")(
                                     geo.masked_input(feats, levels[0], self.dtype), levels[0],
                                     train)
    out = jnp.zeros(feats.shape[:2] + (self.out_dim,), jnp.float32)
    for s, planes in enumerate(self.planes):
      x = sparse_resnet.DownStage(planes, self.layers[s], self.bn_momentum, self.axis_name,
                                  name=f"stage{s + 1}")(x, geometry, s, train)
      delayer = nn.Dense(self.out_dim, use_bias=False, dtype=self.dtype,
                         param_dtype=jnp.float32, name=f"delayer{s + 1}")
      if planes < self.out_dim:   # Interpolation commutes with the linear layer: the
        scale = delayer(geo.interpolate_to_input(x, geometry, s + 1))   # narrower side first.
      else:
        scale = geo.interpolate_to_input(delayer(x), geometry, s + 1)
      out = out + scale.astype(jnp.float32)
    return out
