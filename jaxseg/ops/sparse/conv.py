"""Sparse voxel convolutions: gather -> matmul over the kernel maps of kernel_map.py.

Every function takes batched features [B, C, F] with the level's mask, returns zeros on
padding rows and never reads padding rows (they may hold NaN).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxseg.ops.sparse.kernel_map import LevelLink

# Offsets gathered per step: bounds the gathered tensor to chunk x C x Cin floats.
_MAX_OFFSETS_PER_STEP = 27


def _offsets_per_step(num_offsets: int) -> int:
  return max(d for d in range(1, min(num_offsets, _MAX_OFFSETS_PER_STEP) + 1)
             if num_offsets % d == 0)


def _pad_row(x: jnp.ndarray) -> jnp.ndarray:
  """[C, F] -> [C + 1, F] with a zero row C, the target of absent neighbours."""
  return jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)], axis=0)


def _gather_matmul(feats, neighbours, kernel):
  """out[i] = sum_o feats[neighbours[o, i]] @ kernel[o] (row C reads zeros).

  feats [C, Ci], neighbours int32 [K, C], kernel [K, Ci, Co] -> [C, Co]; a lax.scan over
  chunks of offsets keeps the gathered tensor at chunk x C x Ci.
  """
  num_offsets, capacity = neighbours.shape
  chunk = _offsets_per_step(num_offsets)
  padded = _pad_row(feats)
  nbr = neighbours.reshape(num_offsets // chunk, chunk, capacity)
  ker = kernel.reshape(num_offsets // chunk, chunk, *kernel.shape[1:])

  def step(acc, xs):
    nbr_chunk, ker_chunk = xs
    return acc + jnp.einsum("kci,kio->co", padded[nbr_chunk], ker_chunk), None

  out = jnp.zeros((capacity, kernel.shape[2]), jnp.result_type(feats, kernel))
  out, _ = jax.lax.scan(step, out, (nbr, ker))
  return out


def _kernel_grad(feats, neighbours, grad_out):
  """d/dkernel of _gather_matmul: [K, Ci, Co] = sum_i feats[neighbours[o, i]]^T grad_out[i]."""
  num_offsets, capacity = neighbours.shape
  chunk = _offsets_per_step(num_offsets)
  padded = _pad_row(feats)
  nbr = neighbours.reshape(num_offsets // chunk, chunk, capacity)

  def step(_, nbr_chunk):
    return None, jnp.einsum("kci,co->kio", padded[nbr_chunk], grad_out)

  _, grads = jax.lax.scan(step, None, nbr)
  return grads.reshape(num_offsets, feats.shape[1], grad_out.shape[1])


@jax.custom_vjp
def _submanifold(feats, neighbours, kernel):
  return _gather_matmul(feats, neighbours, kernel)


def _submanifold_fwd(feats, neighbours, kernel):
  return _gather_matmul(feats, neighbours, kernel), (feats, neighbours, kernel)


def _submanifold_bwd(residuals, grad_out):
  # The map is symmetric (j = nbr[o, i] <=> i = nbr[K-1-o, j]), so the feature gradient is
  # the same gather-conv with the mirrored, transposed kernel: no scatter-add needed.
  feats, neighbours, kernel = residuals
  grad_feats = _gather_matmul(grad_out, neighbours, jnp.swapaxes(kernel[::-1], 1, 2))
  return grad_feats, None, _kernel_grad(feats, neighbours, grad_out)


_submanifold.defvjp(_submanifold_fwd, _submanifold_bwd)


def submanifold_conv(feats: jnp.ndarray, mask: jnp.ndarray, neighbours: jnp.ndarray,
                     kernel: jnp.ndarray) -> jnp.ndarray:
  """Submanifold convolution: outputs on the input voxels only.

  Args:
    feats: float [B, C, Ci].
    mask: bool [B, C].
    neighbours: int32 [B, K^3, C], SparseLevel.neighbours[K].
    kernel: float [K^3, Ci, Co] (a dense [K, K, K, Ci, Co] kernel reshaped; cross-correlation
      like lax.conv_general_dilated with SAME padding).
  Returns:
    float [B, C, Co], zero on padding rows. No bias.
  """
  if neighbours.shape[1] != kernel.shape[0]:
    raise ValueError(f"kernel has {kernel.shape[0]} offsets, the map {neighbours.shape[1]}")
  feats = jnp.where(mask[..., None], feats, 0)
  return jax.vmap(_submanifold, in_axes=(0, 0, None))(feats, neighbours, kernel)


def strided_conv(feats: jnp.ndarray, mask: jnp.ndarray, link: LevelLink,
                 kernel: jnp.ndarray) -> jnp.ndarray:
  """Kernel-2 stride-2 convolution onto the parent level.

  out[p] = sum over children c of p: feats[c] @ kernel[child_offset(c)].

  Args:
    feats: float [B, C, Ci] at the fine level; mask: bool [B, C].
    link: LevelLink from the fine level to the coarse level (capacity P).
    kernel: float [8, Ci, Co] (a dense [2, 2, 2, Ci, Co] kernel reshaped).
  Returns:
    float [B, P, Co], zero on the coarse padding rows.
  """
  feats = jnp.where(mask[..., None], feats, 0)

  def single(x, children):
    gathered = _pad_row(x)[children]                               # [P, 8, Ci]
    return gathered.reshape(children.shape[0], -1) @ kernel.reshape(-1, kernel.shape[2])

  return jax.vmap(single)(feats, link.children)


def transposed_conv(feats: jnp.ndarray, link: LevelLink, kernel: jnp.ndarray) -> jnp.ndarray:
  """Kernel-2 stride-2 transposed convolution back onto the fine level's voxels.

  out[c] = feats[parent(c)] @ kernel[child_offset(c)].

  Args:
    feats: float [B, P, Ci] at the coarse level (padding rows must be zero or are unread:
      only parents of valid fine voxels are read).
    link: LevelLink from the fine level (capacity C) to the coarse level.
    kernel: float [8, Ci, Co].
  Returns:
    float [B, C, Co], zero on fine padding rows.
  """
  def single(x, parent, offset):
    per_offset = jnp.einsum("pi,kio->pko", x, kernel)               # [P, 8, Co]
    per_offset = jnp.concatenate(
        [per_offset, jnp.zeros((1,) + per_offset.shape[1:], per_offset.dtype)], axis=0)
    return per_offset[parent, offset]

  return jax.vmap(single)(feats, link.parent, link.child_offset)


def broadcast_to_children(feats: jnp.ndarray, link: LevelLink) -> jnp.ndarray:
  """Nearest-parent upsampling: each fine voxel takes its parent cell's feature.

  feats float [B, P, F] -> [B, C, F], zero on fine padding rows.
  """
  return jax.vmap(lambda x, parent: _pad_row(x)[parent])(feats, link.parent)
