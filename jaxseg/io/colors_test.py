"""Tests for jaxseg.io.colors: 8-bit, fractional and 16-bit colours, and values that fit none."""

import logging

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io.colors import colors_to_uint8


def _rgb(n=50, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 3)).astype(np.uint8)


def test_eight_bit_colours_are_kept_integer_or_float():
  rgb = _rgb()
  np.testing.assert_array_equal(colors_to_uint8(rgb, "a"), rgb)
  np.testing.assert_array_equal(colors_to_uint8(rgb.astype(np.float32), "a"), rgb)
  np.testing.assert_array_equal(colors_to_uint8(rgb.astype(np.uint16), "a"), rgb)


def test_fractions_are_scaled_with_a_log_line(caplog):
  rgb = _rgb()
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    out = colors_to_uint8(rgb / 255.0, "cloud.ply")
  np.testing.assert_array_equal(out, rgb)
  assert any("cloud.ply" in r.getMessage() and "0..1" in r.getMessage()
             for r in caplog.records)


def test_sixteen_bit_colours_are_scaled_with_a_log_line(caplog):
  rgb = _rgb()
  sixteen = rgb.astype(np.uint16) * 257  # 255 -> 65535, as 16-bit exports scale them
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    out = colors_to_uint8(sixteen, "scan.npy")
  np.testing.assert_array_equal(out, rgb)
  assert any("16-bit" in r.getMessage() for r in caplog.records)
  np.testing.assert_array_equal(colors_to_uint8(sixteen.astype(np.float64), "scan.npy"), rgb)


@pytest.mark.parametrize("values,problem", [
    ([[-1.0, 0.0, 0.0]], "none of"), ([[70000, 0, 0]], "none of"),
    ([[np.nan, 0.0, 0.0]], "NaN or inf")])
def test_colours_that_fit_no_encoding_are_errors(values, problem):
  with pytest.raises(InputError, match=problem) as e:
    colors_to_uint8(np.asarray(values), "bad.txt")
  assert str(e.value).startswith("bad.txt:") and "Fix:" in str(e.value)
