"""Pair-list sparse convolutions: gather -> batched matmul -> scatter over compacted lists.

The host (`host_maps.py`, `jaxseg.data.packing`) lists, per level and kernel offset, only the
(input row, output row) pairs that exist. The offsets are sorted by their number of pairs and
split into a few bands of fixed size; a band's lists are padded to its largest count, so a
band is one [offsets, rows] block and the conv is, per band, one gather, one batched matmul
(an offset's rows times that offset's kernel slice) and one scatter-add. The work is the real
neighbour count plus the padding inside each band (a few percent to ~20% on real scans), not
kernel volume x capacity as in the dense-offset layout (`conv.py`, the reference this module is
tested against).

Shapes are per pack (one buffer of several scenes); the public functions take a leading pack
axis G:
  x        float [G, C, Ci] features of a level with capacity C; rows >= the level's count are
           padding: they must be zero for the submanifold conv (its centre offset is a plain
           matmul), the stride-2 convs never read them, and every output has zero padding.
  bands    PairBands: per band b, inputs / outputs int32 [G, n_b, M_b] rows (C = padding slot)
           and offset int32 [G, n_b]; only the half offsets o < K // 2 are stored, the
           mirrored offset K - 1 - o is the same list with inputs and outputs swapped.
  kernel   float [K, Ci, Co] (a dense [k, k, k, Ci, Co] kernel reshaped, K = k^3).

Mixed precision: the gathers and matmuls run in x's dtype (e.g. bfloat16) with float32
accumulation (`preferred_element_type`), the scatter-add accumulates in float32 and the output
is cast back to x's dtype.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxseg.ops.rows import per_pack, scatter_add_rows, take_rows


@flax.struct.dataclass
class PairBands:
  """Half-offset neighbour pairs of one kernel at one level, in bands (module docstring).

  inputs, outputs: tuples over bands of int32 [..., n_b, M_b]; offset: tuple of int32
  [..., n_b] in [0, K // 2). kernel_volume: K (static).
  """
  inputs: tuple
  outputs: tuple
  offset: tuple
  kernel_volume: int = flax.struct.field(pytree_node=False)


@flax.struct.dataclass
class ChildBands:
  """The fine-to-coarse map of a stride-2 kernel-2 conv, in bands of child offsets.

  children: tuple over bands of int32 [..., n_b, M_b] fine rows (fine capacity = padding);
  parents: the same shapes, the coarse row of each child (coarse capacity = padding);
  offset: tuple of int32 [..., n_b], the child position in the parent cell, in [0, 8).
  """
  children: tuple
  parents: tuple
  offset: tuple


def _band_matmul(x, rows, kernel, offset):
  """x[rows] [n, M, Ci] times kernel[offset] [n, Ci, Co] -> float32 [n, M, Co] (operands in
  x's dtype); the partial sums go straight into the float32 scatter-add."""
  return jnp.einsum("kmi,kio->kmo", take_rows(x, rows), kernel[offset].astype(x.dtype),
                    preferred_element_type=jnp.float32)


def _apply(x, inputs, outputs, offset, kernel):
  """out[i] = x[i] @ kernel[centre] + sum over pairs (j -> i, o) of x[j] @ kernel[o]; each
  stored list serves its offset and, swapped, the mirrored one."""
  volume = kernel.shape[0]
  out = jnp.dot(x, kernel[volume // 2].astype(x.dtype), preferred_element_type=jnp.float32)
  for ins, outs, offs in zip(inputs, outputs, offset):   # One gather, matmul, scatter a band.
    part = _band_matmul(x, jnp.concatenate([ins, outs]), kernel,
                        jnp.concatenate([offs, volume - 1 - offs]))
    out = scatter_add_rows(jnp.concatenate([outs, ins]), part, x.shape[0], out)
  return out.astype(x.dtype)


@jax.custom_vjp
def _submanifold(x, inputs, outputs, offset, kernel):
  return _apply(x, inputs, outputs, offset, kernel)


def _submanifold_fwd(x, inputs, outputs, offset, kernel):
  return _apply(x, inputs, outputs, offset, kernel), (x, inputs, outputs, offset, kernel)


def _submanifold_bwd(residuals, grad):
  # Only x is kept (the gathers are recomputed). The feature gradient is the same pair-list
  # conv with the mirrored, transposed kernel: pair (j -> i, o) sends grad[i] @ kernel[o]^T to
  # j, and (i -> j, K-1-o) is a pair too, so it reads like a forward pass.
  x, inputs, outputs, offset, kernel = residuals
  volume = kernel.shape[0]
  grad = grad.astype(x.dtype)
  grad_x = _apply(grad, inputs, outputs, offset, jnp.swapaxes(kernel[::-1], 1, 2))
  grad_kernel = jnp.zeros(kernel.shape, jnp.float32)
  for ins, outs, offs in zip(inputs, outputs, offset):
    both_in, both_out = jnp.concatenate([ins, outs]), jnp.concatenate([outs, ins])
    per_offset = jnp.einsum("kmi,kmo->kio", take_rows(x, both_in), take_rows(grad, both_out),
                            preferred_element_type=jnp.float32)
    grad_kernel = grad_kernel.at[jnp.concatenate([offs, volume - 1 - offs])].add(per_offset)
  centre = jnp.dot(x.T, grad, preferred_element_type=jnp.float32)
  grad_kernel = grad_kernel.at[volume // 2].add(centre)
  return grad_x, None, None, None, grad_kernel.astype(kernel.dtype)


_submanifold.defvjp(_submanifold_fwd, _submanifold_bwd)


def submanifold_conv(x: jax.Array, bands: PairBands, kernel: jax.Array) -> jax.Array:
  """Submanifold conv on pair lists: [G, C, Ci] -> [G, C, Co].

  x's padding rows must be zero (the centre offset is a plain matmul over every row); the
  output's padding rows are then zero too. kernel: [K, Ci, Co] with K = bands.kernel_volume.
  """
  if kernel.shape[0] != bands.kernel_volume:
    raise ValueError(f"kernel has {kernel.shape[0]} offsets, the pair lists "
                     f"{bands.kernel_volume}")
  return per_pack(lambda *a: _submanifold(*a, kernel), x, bands.inputs, bands.outputs,
                  bands.offset)


def _gather_matmul_scatter(x, sources, targets, offset, kernel, capacity):
  """Per band: x[sources] @ kernel[offset], summed into rows `targets` of [capacity, Co]."""
  out = None
  for s, t, o in zip(sources, targets, offset):
    out = scatter_add_rows(t, _band_matmul(x, s, kernel, o), capacity, out)
  return out.astype(x.dtype)


def strided_conv(x: jax.Array, link: ChildBands, kernel: jax.Array,
                 coarse_capacity: int) -> jax.Array:
  """Kernel-2 stride-2 conv: out[p] = sum over children c of p of x[c] @ kernel[offset(c)].

  x: float [G, C, Ci] at the fine level (padding rows are never read); kernel [8, Ci, Co].
  Returns float [G, P, Co] with P = coarse_capacity (zeros on coarse padding rows).
  """
  return per_pack(lambda x, c, p, o: _gather_matmul_scatter(x, c, p, o, kernel,
                                                            coarse_capacity),
                  x, link.children, link.parents, link.offset)


def transposed_conv(x: jax.Array, link: ChildBands, kernel: jax.Array,
                    fine_capacity: int) -> jax.Array:
  """Kernel-2 stride-2 transposed conv: out[c] = x[parent(c)] @ kernel[offset(c)].

  x: float [G, P, Ci] at the coarse level (padding rows are never read); kernel [8, Ci, Co].
  Returns float [G, C, Co] with C = fine_capacity (zeros on fine padding rows).
  """
  return per_pack(lambda x, c, p, o: _gather_matmul_scatter(x, p, c, o, kernel, fine_capacity),
                  x, link.children, link.parents, link.offset)
