"""Tests for row gathers and scatter-adds against float64 numpy, on every platform's form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops import rows as rows_lib

_C, _F = 9, 5


def _case(seed=0, negative=True):
  rng = np.random.default_rng(seed)
  rows = rng.integers(0, _C + 1, size=(4, 7)).astype(np.int32)   # _C is the padding slot.
  rows[0, :3] = 2                                                 # Repeated rows add up.
  if negative:
    rows[1, 0] = -1                        # Never produced by the callers; dropped, not wrapped.
  values = rng.normal(size=(4, 7, _F)).astype(np.float32)
  into = rng.normal(size=(_C, _F)).astype(np.float32)
  return rows, values, into


def _np_scatter(rows, values, into):
  out = into.astype(np.float64).copy()
  for r, v in zip(rows.reshape(-1), values.reshape(-1, _F)):
    if 0 <= r < _C:
      out[r] += v
  return out


@pytest.mark.parametrize("form", ["_scatter_windows", "_scatter_per_row"])
def test_each_platform_form_matches_numpy(form):
  rows, values, into = _case()
  got = jax.jit(getattr(rows_lib, form))(into, rows.reshape(-1), values.reshape(-1, _F))
  np.testing.assert_allclose(np.asarray(got), _np_scatter(rows, values, into), rtol=1e-6,
                             atol=1e-6)


def test_scatter_add_rows_accumulates_into_and_drops_padding():
  rows, values, into = _case(1)
  got = rows_lib.scatter_add_rows(rows, values.astype(jnp.bfloat16), _C, jnp.asarray(into))
  assert got.dtype == jnp.float32
  want = _np_scatter(rows, np.asarray(values.astype(jnp.bfloat16), np.float64), into)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


def test_take_rows_reads_zeros_at_padding_and_its_gradient_is_the_scatter():
  rows, _, x = _case(2, negative=False)
  taken = rows_lib.take_rows(jnp.asarray(x), rows)
  want = np.concatenate([x, np.zeros((1, _F), np.float32)])[rows]
  np.testing.assert_array_equal(np.asarray(taken), want)
  cotangent = np.random.default_rng(3).normal(size=taken.shape).astype(np.float32)
  grad = jax.grad(lambda x: jnp.sum(rows_lib.take_rows(x, rows) * cotangent))(jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(grad), _np_scatter(rows, cotangent, 0 * x),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("platform, per_row", [("cpu", False), ("tpu", True), ("cuda", True)])
def test_the_form_is_chosen_by_the_platform_lowered_for(platform, per_row):
  # A program exported for an accelerator from this CPU-only machine must carry the per-row
  # scatter: the TPU compiler turns the window form into a loop over the rows.
  rows, values, _ = _case()
  fn = jax.jit(lambda r, v: rows_lib.scatter_add_rows(r, v, _C))
  text = jax.export.export(fn, platforms=[platform])(rows, values).mlir_module()
  scatters = [line for line in text.splitlines() if "stablehlo.scatter" in line]
  assert len(scatters) == 1
  assert ("inserted_window_dims = [0]" in scatters[0]) == per_row
  assert ("update_window_dims = [1, 2]" in scatters[0]) == (not per_row)


_BLOCK = rows_lib._WEIGHTED_BLOCK


@pytest.mark.parametrize("form", ["_weighted_in_blocks", "_weighted_per_column"])
@pytest.mark.parametrize("num_rows, taps", [(7, 8), (_BLOCK, 8), (2 * _BLOCK + 5, 8),
                                            (_BLOCK + 1, 3), (0, 8)])
def test_weighted_scatter_matches_numpy_on_every_form_and_block_split(form, num_rows, taps):
  # Fewer rows than a block, exactly one block, full blocks plus a tail, two half blocks of
  # 3 taps, and no rows; padding (_C) and negative rows are dropped.
  rng = np.random.default_rng(num_rows)
  rows = rng.integers(0, _C + 1, size=(num_rows, taps)).astype(np.int32)
  rows[:min(num_rows, 2), 0] = -1
  weights = rng.random((num_rows, taps)).astype(np.float32)
  values = rng.normal(size=(num_rows, _F)).astype(np.float32)
  want = np.zeros((_C, _F))
  for r, w, v in zip(rows, weights.astype(np.float64), values.astype(np.float64)):
    for k in range(taps):
      if 0 <= r[k] < _C:
        want[r[k]] += w[k] * v
  public = rows_lib.scatter_add_weighted(rows, weights, values, _C)
  np.testing.assert_allclose(np.asarray(public), want, rtol=1e-5, atol=1e-5)
  if num_rows:
    into = jnp.zeros((_C, _F), jnp.float32)
    got = jax.jit(getattr(rows_lib, form))(into, rows, weights, values)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("platform, per_row", [("cpu", False), ("tpu", True), ("cuda", True)])
def test_weighted_scatter_loops_over_blocks_on_cpu_only(platform, per_row):
  rows = np.zeros((3000, 8), np.int32)
  fn = jax.jit(lambda r, w, v: rows_lib.scatter_add_weighted(r, w, v, _C))
  text = jax.export.export(fn, platforms=[platform])(
      rows, np.ones((3000, 8), np.float32), np.ones((3000, _F), np.float32)).mlir_module()
  scatters = [line for line in text.splitlines() if "stablehlo.scatter" in line]
  assert len(scatters) == 8
  assert all(("inserted_window_dims = [0]" in line) == per_row for line in scatters)
  assert ("stablehlo.while" in text) == (not per_row)


def test_on_rows_applies_a_row_wise_fn_to_every_leading_axis_and_shapes_it_back():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 3, 4)).astype(np.float32)
  mask = rng.random((2, 3)) < 0.5
  weight = rng.normal(size=(4, 6)).astype(np.float32)
  got = rows_lib.on_rows(lambda r, m: jnp.where(m[:, None], r @ weight, 0.0), x, mask)
  want = np.where(mask[..., None], np.einsum("gcf,fo->gco", x.astype(np.float64), weight), 0)
  assert got.shape == (2, 3, 6)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
