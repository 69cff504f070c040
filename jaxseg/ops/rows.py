"""Row gathers and row scatter-adds, the memory-bound core of every sparse op.

  take_rows(x, rows)                 x [C, F], rows int [...] -> [..., F]
  scatter_add_rows(rows, values, C)  values [..., F] added at rows -> float32 [C, F]

Rows are in [0, C]; row C is the padding slot: it reads zeros and its writes are dropped.
(jnp.take wraps negative indices, so padding is never -1.)

  scatter_add_weighted(rows, w, v, C)  rows int [N, K], w [N, K], v [N, F]: sum over k of
                                     w[:, k] * v scattered at rows[:, k] -> float32 [C, F]

`per_pack(fn, *args)` maps fn over the leading pack axis G of a packed batch;
`on_rows(fn, x, *per_row)` applies a row-wise fn to x [..., F] as one [N, F] matrix.

`take_rows` has a custom VJP whose transpose is `scatter_add_rows`. The scatter's form is
chosen per platform when the function is lowered (`lax.platform_dependent`):
  cpu      [1, F] update windows, the form XLA's CPU backend scatters without first copying
           the updates to another layout (which it does for the transposes of jnp.take and for
           segment_sum);
  others   one row per index (`.at[rows].add`), which TPUs scatter natively: the TPU compiler
           turns the [1, F]-window form into a while loop over the rows, one per iteration
           (seen by compiling for a TPU v5e with libtpu: `--suite tpu_compile`). GPUs get the
           same form (jnp's own `.at[].add`); not measured there: no GPU was lent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_ROW_WINDOWS = jax.lax.ScatterDimensionNumbers(
    update_window_dims=(1, 2), inserted_window_dims=(), scatter_dims_to_operand_dims=(0,))


def _scatter_windows(into, rows, values):
  """The CPU form: into [C, F] += values [N, F] at rows [N], as [1, F] update windows."""
  return jax.lax.scatter_add(into, rows[:, None], values[:, None], _ROW_WINDOWS,
                             mode=jax.lax.GatherScatterMode.FILL_OR_DROP)


def _scatter_per_row(into, rows, values):
  """The accelerator form: into [C, F] += values [N, F] at rows [N], one row per index."""
  return into.at[rows].add(values, mode="drop", wrap_negative_indices=False)


def scatter_add_rows(rows: jax.Array, values: jax.Array, capacity: int,
                     into: jax.Array | None = None) -> jax.Array:
  """float32 [capacity, F]: values [..., F] (rows' shape + [F]) summed at rows [...] into
  `into` (float32 [capacity, F]; default zeros); row `capacity` is dropped. Chaining calls
  through `into` accumulates several lists in place, without concatenating them."""
  features = values.shape[-1]
  if into is None:
    into = jnp.zeros((capacity, features), jnp.float32)
  rows, values = rows.reshape(-1), values.reshape(-1, features).astype(jnp.float32)
  return jax.lax.platform_dependent(into, rows, values, cpu=_scatter_windows,
                                    default=_scatter_per_row)


def row_blocks(num_rows: int, max_rows: int) -> tuple[int, int]:
  """(blocks, size): the fewest blocks of at most max_rows rows that hold num_rows, all of one
  size, so the last pads by fewer than `blocks` rows (num_rows 0: one empty block)."""
  blocks = max(1, -(-num_rows // max_rows))
  return blocks, -(-num_rows // blocks)


# Rows per block of the CPU form of `scatter_add_weighted` (at most): one block's K weighted
# copies of the values ([block, F] each) stay in cache between the multiply and the scatter.
_WEIGHTED_BLOCK = 1024


def _scatter_taps(scatter, into, rows, weights, values):
  """into [C, F] += weights[:, k, None] * values at rows[:, k] for each tap k of rows [N, K],
  one `scatter` (`_scatter_windows` or `_scatter_per_row`) a tap."""
  for k in range(rows.shape[1]):
    into = scatter(into, rows[:, k], weights[:, k:k + 1] * values)
  return into


def _weighted_per_column(into, rows, weights, values):
  """The accelerator form: K per-row scatters of whole [N, F] weighted copies."""
  return _scatter_taps(_scatter_per_row, into, rows, weights, values)


def _weighted_in_blocks(into, rows, weights, values):
  """The CPU form: the weighted copies made and scattered one block of rows at a time, ~3x
  faster than making each [N, F] copy whole (measured at N = 85k, F = 128, K = 8). N splits
  into equal blocks of at most _WEIGHTED_BLOCK rows, padded by at most one row per block
  (padding rows scatter to the dropped row), so that the loop body is the only copy of the K
  scatters in the program."""
  capacity, num_rows = into.shape[0], rows.shape[0]
  blocks, size = row_blocks(num_rows, _WEIGHTED_BLOCK)
  pad = blocks * size - num_rows
  rows = jnp.pad(rows, ((0, pad), (0, 0)), constant_values=capacity)
  weights, values = (jnp.pad(a, ((0, pad), (0, 0))) for a in (weights, values))

  def block(b, into):
    r, w, v = (jax.lax.dynamic_slice_in_dim(a, b * size, size) for a in (rows, weights, values))
    return _scatter_taps(_scatter_windows, into, r, w, v)
  return jax.lax.fori_loop(0, blocks, block, into)


def scatter_add_weighted(rows: jax.Array, weights: jax.Array, values: jax.Array,
                         capacity: int) -> jax.Array:
  """float32 [capacity, F]: sum over k of weights[:, k, None] * values scattered at rows[:, k]
  (rows int [N, K] in [0, capacity], row `capacity` dropped; weights [N, K]; values [N, F]),
  the transpose of a K-tap weighted gather such as trilinear interpolation. Weights and
  values are cast to float32 before they are multiplied."""
  into = jnp.zeros((capacity, values.shape[-1]), jnp.float32)
  if rows.shape[0] == 0:
    return into
  weights, values = weights.astype(jnp.float32), values.astype(jnp.float32)
  return jax.lax.platform_dependent(into, rows, weights, values, cpu=_weighted_in_blocks,
                                    default=_weighted_per_column)


@jax.custom_vjp
def take_rows(x: jax.Array, rows: jax.Array) -> jax.Array:
  """x [C, F], rows int [...] in [0, C] -> [..., F] in x's dtype; row C reads zeros."""
  return jnp.take(x, rows, axis=0, mode="fill", fill_value=0)


def _take_rows_fwd(x, rows):
  # An empty [C, 0] array carries x's row count and dtype into the backward pass.
  return take_rows(x, rows), (rows, jnp.zeros((x.shape[0], 0), x.dtype))


def _take_rows_bwd(residuals, grad):
  rows, like = residuals
  return scatter_add_rows(rows, grad, like.shape[0]).astype(like.dtype), None


take_rows.defvjp(_take_rows_fwd, _take_rows_bwd)


def per_pack(fn, *args):
  """fn over the leading pack axis of `args` (pytrees of arrays [G, ...]).

  A single pack (one device, or one device's shard under shard_map) runs fn unbatched: XLA
  rewrites batched scatters into a flat scatter whose updates it copies to a new layout on
  CPU, so vmap is kept for several packs per device only.
  """
  sizes = {a.shape[0] for a in jax.tree.leaves(args)}
  if sizes == {1}:
    out = fn(*jax.tree.map(lambda a: a[0], args))
    return jax.tree.map(lambda o: o[None], out)
  return jax.vmap(fn)(*args)


def on_rows(fn, x: jax.Array, *per_row: jax.Array) -> jax.Array:
  """fn on the rows of x [..., F] as one [N, F] matrix (each of per_row [...] as [N]); its
  output [N, F'] shaped back to [..., F'].

  For row-wise layers (a biased Dense, a head with BatchNorm) on packed features [G, C, F]:
  XLA:CPU sums a [1, C, F] gradient over C, as autodiff makes of a bias, 3-12x slower than an
  [N, F] one over its rows (a Dense's backward at 85k x 32 -> 128: 42 ms against 14.5 ms).
  """
  out = fn(x.reshape(-1, x.shape[-1]), *(a.reshape(-1) for a in per_row))
  return out.reshape(x.shape[:-1] + out.shape[-1:])
