"""Sparse voxel convolutions: gather -> matmul over the kernel maps of kernel_map.py.

Every function takes batched features [B, C, F] with the level's mask, returns zeros on
padding rows and never reads padding rows (they may hold NaN).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops.sparse.kernel_map import LevelLink

# Largest gathered tensor (offsets x C x Cin elements) one scan step of a submanifold conv
# builds, per scene (vmap over the batch multiplies it); 2^26 float32 = 256 MiB.
GATHER_BUDGET_ELEMENTS = 1 << 26


def _offsets_per_step(num_offsets: int, rows: int, channels: int) -> int:
  """Largest divisor of num_offsets whose gathered chunk fits GATHER_BUDGET_ELEMENTS."""
  fits = max(1, GATHER_BUDGET_ELEMENTS // max(1, rows * channels))
  return max(d for d in range(1, num_offsets + 1) if num_offsets % d == 0 and d <= fits)


def _pad_row(x: jnp.ndarray) -> jnp.ndarray:
  """[C, F] -> [C + 1, F] with a zero row C, the target of absent neighbours."""
  return jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)], axis=0)


def _gather_matmul(feats, neighbours, kernel):
  """out[i] = sum_o feats[neighbours[o, i]] @ kernel[o] (row C reads zeros).

  feats [C, Ci], neighbours int32 [K, C], kernel [K, Ci, Co] -> [C, Co]; a lax.scan over
  chunks of offsets keeps the gathered tensor at chunk x C x Ci.
  """
  num_offsets, capacity = neighbours.shape
  chunk = _offsets_per_step(num_offsets, capacity, feats.shape[1])
  padded = _pad_row(feats)
  nbr = neighbours.reshape(num_offsets // chunk, chunk, capacity)
  ker = kernel.reshape(num_offsets // chunk, chunk, *kernel.shape[1:])

  def step(acc, xs):
    nbr_chunk, ker_chunk = xs
    return acc + jnp.einsum("kci,kio->co", padded[nbr_chunk], ker_chunk), None

  # zeros_like keeps feats' device-varying type, so the scan carry type-checks in shard_map.
  out = jnp.zeros_like(feats, shape=(capacity, kernel.shape[2]),
                       dtype=jnp.result_type(feats, kernel))
  out, _ = jax.lax.scan(step, out, (nbr, ker))
  return out


def _kernel_grad(feats, neighbours, grad_out):
  """d/dkernel of _gather_matmul: [K, Ci, Co] = sum_i feats[neighbours[o, i]]^T grad_out[i]."""
  num_offsets, capacity = neighbours.shape
  chunk = _offsets_per_step(num_offsets, capacity, feats.shape[1])
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


def _gather_children(x, children):
  """[C, F], int32 [P, 8] -> [P, 8, F] (row C reads zeros)."""
  return _pad_row(x)[children]


def _gather_parents(per_offset, parent, offset):
  """[P, 8, F], int32 [C] parent rows and child offsets -> [C, F] (parent row P reads zeros)."""
  padded = jnp.concatenate(
      [per_offset, jnp.zeros((1,) + per_offset.shape[1:], per_offset.dtype)], axis=0)
  return padded[parent, offset]


def _down(x, children, kernel):
  """out[p] = sum_o x[children[p, o]] @ kernel[o]: [C, Ci] -> [P, Co]."""
  gathered = _gather_children(x, children)
  return gathered.reshape(children.shape[0], -1) @ kernel.reshape(-1, kernel.shape[2])


def _up(x, parent, offset, kernel):
  """out[c] = x[parent[c]] @ kernel[offset[c]]: [P, Ci] -> [C, Co]."""
  return _gather_parents(jnp.einsum("pi,kio->pko", x, kernel), parent, offset)


# Each fine voxel is the child of exactly one parent, so the transpose of the down gather is
# the up gather and vice versa: both VJPs are gathers, with no scatter-add.
@jax.custom_vjp
def _strided(x, children, parent, offset, kernel):
  return _down(x, children, kernel)


def _strided_fwd(x, children, parent, offset, kernel):
  return _down(x, children, kernel), (x, children, parent, offset, kernel)


def _strided_bwd(residuals, grad_out):
  x, children, parent, offset, kernel = residuals
  grad_x = _up(grad_out, parent, offset, jnp.swapaxes(kernel, 1, 2))
  grad_kernel = jnp.einsum("pki,po->kio", _gather_children(x, children), grad_out)
  return grad_x, None, None, None, grad_kernel


_strided.defvjp(_strided_fwd, _strided_bwd)


@jax.custom_vjp
def _transposed(x, children, parent, offset, kernel):
  return _up(x, parent, offset, kernel)


def _transposed_fwd(x, children, parent, offset, kernel):
  return _up(x, parent, offset, kernel), (x, children, parent, offset, kernel)


def _transposed_bwd(residuals, grad_out):
  x, children, parent, offset, kernel = residuals
  grad_x = _down(grad_out, children, jnp.swapaxes(kernel, 1, 2))
  grad_kernel = jnp.einsum("pi,pko->kio", x, _gather_children(grad_out, children))
  return grad_x, None, None, None, grad_kernel


_transposed.defvjp(_transposed_fwd, _transposed_bwd)


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
  return jax.vmap(_strided, in_axes=(0, 0, 0, 0, None))(
      feats, link.children, link.parent, link.child_offset, kernel)


def transposed_conv(feats: jnp.ndarray, link: LevelLink, kernel: jnp.ndarray) -> jnp.ndarray:
  """Kernel-2 stride-2 transposed convolution back onto the fine level's voxels.

  out[c] = feats[parent(c)] @ kernel[child_offset(c)].

  Args:
    feats: float [B, P, Ci] at the coarse level. Padding rows are never read (nor get a
      gradient): only parents of valid fine voxels are.
    link: LevelLink from the fine level (capacity C) to the coarse level.
    kernel: float [8, Ci, Co].
  Returns:
    float [B, C, Co], zero on fine padding rows.
  """
  # Parents without a valid child (dropped voxels' cells) are padding too: zero them so the
  # gather-only backward pass never multiplies their contents.
  has_child = jnp.any(link.children < link.parent.shape[1], axis=-1)
  feats = jnp.where(has_child[..., None], feats, 0)
  return jax.vmap(_transposed, in_axes=(0, 0, 0, 0, None))(
      feats, link.children, link.parent, link.child_offset, kernel)
