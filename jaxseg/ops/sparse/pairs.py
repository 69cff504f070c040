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

Each band of the submanifold conv (forward and both gradients) has two forms, chosen per
platform when it is lowered (`lax.platform_dependent`, as `jaxseg.ops.rows` does):
  cpu      a loop over blocks of the band's rows, each block's gather, matmul and scatter
           small enough to stay in cache (`CPU_BLOCK_BYTES`): the whole-band form writes every
           gathered row and partial product of the band to fresh memory and reads it back
           (Res16FPN18's forward+backward on scene0000_00 at 2 cm: 1.47-1.59 s in blocks
           against 1.89-1.95 s whole, on the 2-core development machine);
  others   the whole band at once: one gather, one batched matmul, one scatter.
"""

from __future__ import annotations

import contextlib

import flax.struct
import jax
import jax.numpy as jnp

from jaxseg.ops.rows import per_pack, row_blocks, scatter_add_rows, take_rows

# Bytes of one [rows, channels] float32 operand (gathered rows, partial products) per block of
# the CPU form (0 within `whole_bands()`). Chosen by timing Res16FPN18's forward+backward on
# scene0000_00 at 2 cm on the 2-core development machine (1 MiB L2 a core, 32 MiB L3):
# 1.47-1.59 s at 4 MiB against 1.59 s at 8 MiB, 1.82 s at 2 MiB, 1.97 s at 16 MiB, 2.13 s at
# 256 KiB and 1.89-1.95 s for the whole band at once (one run each, 2026-12-04).
CPU_BLOCK_BYTES = 4 << 20


@contextlib.contextmanager
def whole_bands():
  """Convs traced inside take the whole-band form on every platform, CPU included: the form
  accelerators run, and the one XLA's cost analysis counts right (it counts a loop's body
  once). For the benchmarks' rooflines. A function jitted and traced before keeps its form:
  jit caches its trace, so trace a new function (a fresh lambda around it) inside."""
  global CPU_BLOCK_BYTES
  saved, CPU_BLOCK_BYTES = CPU_BLOCK_BYTES, 0
  try:
    yield
  finally:
    CPU_BLOCK_BYTES = saved


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


def _band_matmul(x, rows, weights):
  """x[rows] [n, M, Ci] times the band's weights [n, Ci, Co] (kernel[offset]) -> float32
  [n, M, Co] (operands in x's dtype); the partial sums go straight into the float32
  scatter-add."""
  return jnp.einsum("kmi,kio->kmo", take_rows(x, rows), weights.astype(x.dtype),
                    preferred_element_type=jnp.float32)


def _padded_columns(lists, width, padding):
  """int32 [n, M] -> [n, width]: columns added at the end hold the padding slot."""
  return jnp.pad(lists, ((0, 0), (0, width - lists.shape[1])), constant_values=padding)


def _in_blocks(body, carry, sources, targets, channels, padding):
  """The CPU forms' loop: carry after body(carry, s, t) over blocks s, t of the columns of a
  band's lists (int32 [n, M] each), a block holding about CPU_BLOCK_BYTES of float32 rows of
  `channels`; the lists are padded with the padding slot `padding` to whole blocks."""
  n, num = sources.shape
  blocks, size = row_blocks(num, max(1, CPU_BLOCK_BYTES // (4 * channels * n)))
  sources, targets = (_padded_columns(a, blocks * size, padding) for a in (sources, targets))

  def block(b, carry):
    return body(carry, *(jax.lax.dynamic_slice_in_dim(a, b * size, size, axis=1)
                         for a in (sources, targets)))
  return jax.lax.fori_loop(0, blocks, block, carry)


def _band_whole(x, sources, targets, offset, kernel, out):
  """The accelerator form of `_band_conv`: one gather, batched matmul and scatter."""
  return scatter_add_rows(targets, _band_matmul(x, sources, kernel[offset]), x.shape[0], out)


def _band_in_blocks(x, sources, targets, offset, kernel, out):
  """The CPU form of `_band_conv`: the same sums, a block of the lists' columns at a time."""
  weights = kernel[offset]
  return _in_blocks(lambda out, s, t: scatter_add_rows(t, _band_matmul(x, s, weights),
                                                       x.shape[0], out),
                    out, sources, targets, max(kernel.shape[1:]), x.shape[0])


def _band_conv(x, sources, targets, offset, kernel, out):
  """out float32 [C, Co] plus, for each list k of a band, x[sources[k]] @ kernel[offset[k]]
  summed at rows targets[k] (x [C, Ci]; sources, targets int32 [n, M]; offset [n])."""
  if not CPU_BLOCK_BYTES:
    return _band_whole(x, sources, targets, offset, kernel, out)
  return jax.lax.platform_dependent(x, sources, targets, offset, kernel, out,
                                    cpu=_band_in_blocks, default=_band_whole)


def _band_grads(x, grad, sources, targets, weights):
  """One block of `_band_backward`: (float32 [n, M, Ci] grad[targets] @ weights^T, to be
  summed at rows `sources`; float32 [n, Ci, Co] x[sources]^T grad[targets]), each list's
  gathered gradient rows read once for both."""
  rows = take_rows(grad, targets)
  grad_rows = jnp.einsum("kmo,kio->kmi", rows, weights.astype(grad.dtype),
                         preferred_element_type=jnp.float32)
  grad_weights = jnp.einsum("kmi,kmo->kio", take_rows(x, sources), rows,
                            preferred_element_type=jnp.float32)
  return grad_rows, grad_weights


def _backward_whole(x, grad, sources, targets, offset, kernel, grad_x):
  """The accelerator form of `_band_backward`: the whole band at once."""
  grad_rows, grad_weights = _band_grads(x, grad, sources, targets, kernel[offset])
  return scatter_add_rows(sources, grad_rows, x.shape[0], grad_x), grad_weights


def _backward_in_blocks(x, grad, sources, targets, offset, kernel, grad_x):
  """The CPU form of `_band_backward`: the same sums, a block of the lists' columns at a
  time."""
  weights = kernel[offset]

  def block(carry, s, t):
    grad_x, total = carry
    grad_rows, grad_weights = _band_grads(x, grad, s, t, weights)
    return scatter_add_rows(s, grad_rows, x.shape[0], grad_x), total + grad_weights
  total = jnp.zeros(weights.shape, jnp.float32)
  return _in_blocks(block, (grad_x, total), sources, targets, max(kernel.shape[1:]),
                    x.shape[0])


def _band_backward(x, grad, sources, targets, offset, kernel, grad_x):
  """The gradients of `_band_conv` for its output gradient grad [C, Co]: (grad_x float32
  [C, Ci] plus grad[targets[k]] @ kernel[offset[k]]^T summed at rows sources[k]; float32
  [n, Ci, Co] per list k: x[sources[k]]^T grad[targets[k]])."""
  if not CPU_BLOCK_BYTES:
    return _backward_whole(x, grad, sources, targets, offset, kernel, grad_x)
  return jax.lax.platform_dependent(x, grad, sources, targets, offset, kernel, grad_x,
                                    cpu=_backward_in_blocks, default=_backward_whole)


def _apply(x, inputs, outputs, offset, kernel):
  """out[i] = x[i] @ kernel[centre] + sum over pairs (j -> i, o) of x[j] @ kernel[o]; each
  stored list serves its offset and, swapped, the mirrored one."""
  volume = kernel.shape[0]
  out = jnp.dot(x, kernel[volume // 2].astype(x.dtype), preferred_element_type=jnp.float32)
  for ins, outs, offs in zip(inputs, outputs, offset):
    out = _band_conv(x, jnp.concatenate([ins, outs]), jnp.concatenate([outs, ins]),
                     jnp.concatenate([offs, volume - 1 - offs]), kernel, out)
  return out.astype(x.dtype)


@jax.custom_vjp
def _submanifold(x, inputs, outputs, offset, kernel):
  return _apply(x, inputs, outputs, offset, kernel)


def _submanifold_fwd(x, inputs, outputs, offset, kernel):
  return _apply(x, inputs, outputs, offset, kernel), (x, inputs, outputs, offset, kernel)


def _submanifold_bwd(residuals, grad):
  # Only x is kept (the gathers are recomputed). Pair (j -> i, o) sends grad[i] @ kernel[o]^T
  # to row j and adds x[j]^T grad[i] to kernel[o]'s gradient: one pass over each band's
  # lists computes both from the same gathered gradient rows.
  x, inputs, outputs, offset, kernel = residuals
  volume = kernel.shape[0]
  grad = grad.astype(x.dtype)
  grad_x = jnp.dot(grad, kernel[volume // 2].T.astype(x.dtype),
                   preferred_element_type=jnp.float32)
  grad_kernel = jnp.zeros(kernel.shape, jnp.float32)
  for ins, outs, offs in zip(inputs, outputs, offset):
    offsets = jnp.concatenate([offs, volume - 1 - offs])
    grad_x, per_offset = _band_backward(x, grad, jnp.concatenate([ins, outs]),
                                        jnp.concatenate([outs, ins]), offsets, kernel, grad_x)
    grad_kernel = grad_kernel.at[offsets].add(per_offset)
  centre = jnp.dot(x.T, grad, preferred_element_type=jnp.float32)
  grad_kernel = grad_kernel.at[volume // 2].add(centre)
  return (grad_x.astype(x.dtype), None, None, None, grad_kernel.astype(kernel.dtype))


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
    out = scatter_add_rows(t, _band_matmul(x, s, kernel[o]), capacity, out)
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
