"""Tests for jaxseg.io.text_table against numpy.loadtxt and hand-built tables."""

import logging

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io.text_table import parse_numeric_text, read_numeric_table


def test_matches_loadtxt(tmp_path):
  rng = np.random.default_rng(0)
  table = np.concatenate([rng.normal(size=(200, 3)).round(6),
                          rng.integers(0, 256, (200, 3))], axis=1)
  path = tmp_path / "t.txt"
  np.savetxt(path, table, fmt=["%.6f"] * 3 + ["%d"] * 3)
  np.testing.assert_array_equal(read_numeric_table(path, 6), np.loadtxt(path))


def test_comma_separated_with_crlf_and_blank_lines(tmp_path):
  path = tmp_path / "t.csv"
  path.write_bytes(b"1,2,3\r\n\r\n4.5,-5,6e-1\r\n")
  np.testing.assert_array_equal(read_numeric_table(path, 3, delimiter=","),
                                [[1, 2, 3], [4.5, -5, 0.6]])


def test_few_malformed_lines_are_skipped_with_warning(tmp_path, caplog):
  rows = [f"{i} {i + 1} {i + 2} 1 2 3" for i in range(20)]
  rows[7] = "185\x00187 1 2 3 4 5"  # the corrupt S3DIS line
  rows[12] = "1 2 3 4 5"  # a short row
  path = tmp_path / "ceiling_1.txt"
  path.write_text("\n".join(rows) + "\n")
  with caplog.at_level(logging.WARNING):
    table = read_numeric_table(path, 6)
  expected = np.asarray([[float(w) for w in r.split()] for i, r in enumerate(rows)
                         if i not in (7, 12)])
  np.testing.assert_array_equal(table, expected)
  warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any(str(path) in m and "line 8" in m for m in warned)
  assert any("line 13" in m for m in warned)


def test_many_malformed_lines_raise(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_text("".join("1 2 x 4 5 6\n" if i % 2 else "1 2 3 4 5 6\n" for i in range(40)))
  with pytest.raises(InputError, match="malformed lines"):
    read_numeric_table(path, 6)


def test_too_few_columns_and_empty(tmp_path):
  path = tmp_path / "narrow.txt"
  path.write_text("1 2\n3 4\n")
  with pytest.raises(InputError, match="columns"):
    read_numeric_table(path, 3)
  with pytest.raises(InputError, match="no rows"):
    parse_numeric_text("\n \n", "empty.txt", 3)
