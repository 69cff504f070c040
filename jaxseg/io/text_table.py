"""Reading numeric text tables (one point per line: `x y z r g b ...`) that tolerate a few bad
lines.

The whole file is parsed with one `np.loadtxt` call (numpy's C parser); only when that fails is
it re-parsed in chunks of lines, and only failing chunks line by line, so that a few malformed
lines (S3DIS has one in Area_5/hallway_6/Annotations/ceiling_1.txt) are skipped with a warning
naming the file and line, at little extra cost.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.text_table")
MAX_BAD_LINES = 10
_CHUNK_LINES = 20000


def _loadtxt(source, delimiter: str | None) -> np.ndarray | None:
  """float64 (R, C) table, or None when a row is malformed or rows differ in length."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "input contained no data"
    try:
      return np.loadtxt(source, dtype=np.float64, delimiter=delimiter, comments=None, ndmin=2)
    except ValueError:
      return None


def read_numeric_table(path: str | os.PathLike, min_cols: int, *, delimiter: str | None = None,
                       max_bad_lines: int = MAX_BAD_LINES) -> np.ndarray:
  """Reads a text table of numbers.

  Args:
    path: text file, one row per line, columns separated by whitespace (default) or by
      `delimiter` (e.g. ","). Blank lines are ignored.
    min_cols: rows must have at least this many columns; all rows must have the same count.
    delimiter: column separator, None for any whitespace.
    max_bad_lines: malformed rows (a token that is not a number, or a wrong column count) are
      skipped with a WARNING naming file and line when there are at most this many; more raise.

  Returns:
    float64 (R, C) array, C >= min_cols.

  Raises:
    InputError: missing file, no rows, too many malformed rows.
  """
  path = os.fspath(path)
  text = files.read_bytes(path, "text table", "check the path and the dataset root").decode(
      "utf-8", errors="replace")
  return parse_numeric_text(text, path, min_cols, delimiter=delimiter,
                            max_bad_lines=max_bad_lines)


def parse_numeric_text(text: str, path: str, min_cols: int, *, delimiter: str | None = None,
                       max_bad_lines: int = MAX_BAD_LINES, first_line: int = 1) -> np.ndarray:
  """`read_numeric_table` on text already in memory; `path` and `first_line` (the file line
  number of the text's first line) only name the source in errors and warnings."""
  table = _loadtxt(io.StringIO(text), delimiter)
  if table is not None and table.shape[0] and table.shape[1] >= min_cols:
    return table
  return _slow_parse(path, text.splitlines(), min_cols, delimiter, max_bad_lines, first_line)


def _slow_parse(path, lines, min_cols, delimiter, max_bad_lines, first_line) -> np.ndarray:
  """Chunked parse that finds the malformed lines (reported with 1-based file line numbers)."""
  numbered = [(n, ln) for n, ln in enumerate(lines, start=first_line) if ln.strip()]
  if not numbered:
    raise InputError(path, "the file holds no rows", "re-export the file, or remove it")
  widths = [len(ln.split(delimiter)) for _, ln in numbered[:100]]
  num_cols = max(set(widths), key=widths.count)  # the usual row width, even if row 1 is bad
  good, bad = [], []
  for start in range(0, len(numbered), _CHUNK_LINES):
    chunk = numbered[start:start + _CHUNK_LINES]
    table = _loadtxt([ln for _, ln in chunk], delimiter)
    if table is not None and table.shape[1] == num_cols:
      good.append(table)
      continue
    for number, line in chunk:
      words = line.split(delimiter)
      try:
        if len(words) != num_cols:
          raise ValueError(f"{len(words)} columns instead of {num_cols}")
        good.append(np.asarray([[float(w) for w in words]], np.float64))
      except ValueError as e:
        bad.append((number, line, e))
  if num_cols < min_cols or len(bad) > max_bad_lines or not good:
    detail = "; ".join(f"line {n}: {ln[:60]!r}" for n, ln, _ in bad[:3])
    problem = (f"rows have {num_cols} columns, expected at least {min_cols}"
               if num_cols < min_cols else
               f"{len(bad)} malformed lines (more than {max_bad_lines} allowed): {detail}")
    raise InputError(path, problem, "re-export or re-download the file; every line must hold "
                     f"{max(num_cols, min_cols)} numbers")
  for number, line, e in bad:
    _LOG.warning("%s: skipping malformed line %d (%r): %s", path, number, line[:60], e)
  return np.concatenate(good)
