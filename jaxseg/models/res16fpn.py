"""Res16FPN18: the voxel encoder of PointDC / GrowSP (their `models/fpn.py`).

  stem     conv 5^3 -> 32 channels, BN, ReLU                      (level 0, the input voxels)
  stage s  strided conv k2s2 (channels kept), BN, ReLU,
           two BasicBlocks to planes[s] = 32 / 64 / 128 / 256      (level s = 1..4, stride 2^s)
  head     per stage a bias-free linear to 128 channels, brought back to the input voxels and
           summed: float32 [B, C, 128].

Upsampling is nearest-parent broadcast: each input voxel takes the feature of the stage cell
that contains it (through the parent maps), so each scale is piecewise constant per cell. The
reference instead calls MinkowskiEngine's `SparseTensor.interpolate(field)`, a trilinear
interpolation between neighbouring coarse cells at the input points' continuous coordinates;
nearest-parent broadcast is a simplification of it, not an exact match.
BatchNorm momentum is the reference's 0.02 in PyTorch terms (flax 0.98).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.models import sparse_resnet
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.sparse import conv


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
    coarse_capacities: static capacities of levels 1..4; default C/2, C/4, C/8, C/16 (safe
      for surface scans; an overflow is reported in the 'diagnostics' collection as
      'level_overflow' bool [B, 4] when that collection is mutable).
    search_method: jnp.searchsorted method for the kernel maps.
  """
  out_dim: int = 128
  init_dim: int = 32
  planes: tuple[int, ...] = (32, 64, 128, 256)
  layers: tuple[int, ...] = (2, 2, 2, 2)
  stem_kernel_size: int = 5
  bn_momentum: float = 0.98
  axis_name: str | None = None
  coarse_capacities: tuple[int, ...] | None = None
  search_method: str = "scan"

  @nn.compact
  def __call__(self, coords: jnp.ndarray, feats: jnp.ndarray, mask: jnp.ndarray,
               train: bool) -> jnp.ndarray:
    """coords int32 [B, C, 3], feats float32 [B, C, F], mask bool [B, C] -> [B, C, out_dim].

    Padding rows (mask False) may hold anything, NaN included; they output zeros.
    """
    num_stages = len(self.planes)
    levels, links = sparse_resnet.encoder_pyramid(
        self, coords, mask, (self.stem_kernel_size,), num_stages, self.coarse_capacities,
        self.search_method)

    x = sparse_resnet.ConvBNReLU(self.init_dim, self.stem_kernel_size, self.bn_momentum,
                                 self.axis_name, name="stem")(feats, levels[0], train)
    stage_feats = []
    for s in range(num_stages):
      x = sparse_resnet.DownStage(self.planes[s], self.layers[s], self.bn_momentum,
                                  self.axis_name, name=f"stage{s + 1}")(
                                      x, levels[s], links[s], levels[s + 1], train)
      stage_feats.append(x)

    # Coarse to fine: project each stage, add it to the upsampled sum of the coarser ones.
    out = None
    for s in reversed(range(num_stages)):
      projected = nn.Dense(self.out_dim, use_bias=False, name=f"delayer{s + 1}")(stage_feats[s])
      out = projected if out is None else out + projected
      out = conv.broadcast_to_children(out, links[s])
    return jnp.where(mask[..., None], out, 0)
