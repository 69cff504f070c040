"""Sparse voxel convolution in pure JAX: int32 voxel keys, kernel maps built once per
resolution level, gather -> matmul convolutions and masked BatchNorm, all at a fixed capacity
with a validity mask."""

from jaxseg.ops.sparse.conv import broadcast_to_children
from jaxseg.ops.sparse.conv import strided_conv
from jaxseg.ops.sparse.conv import submanifold_conv
from jaxseg.ops.sparse.conv import transposed_conv
from jaxseg.ops.sparse.kernel_map import LevelLink
from jaxseg.ops.sparse.kernel_map import SparseLevel
from jaxseg.ops.sparse.kernel_map import build_level
from jaxseg.ops.sparse.kernel_map import build_pyramid
from jaxseg.ops.sparse.kernel_map import default_capacities
from jaxseg.ops.sparse.kernel_map import downsample
from jaxseg.ops.sparse.kernel_map import level_voxel_counts
from jaxseg.ops.sparse.keys import encode_keys
from jaxseg.ops.sparse.keys import kernel_offsets
from jaxseg.ops.sparse.keys import validate_voxels
from jaxseg.ops.sparse.norm import MaskedBatchNorm
