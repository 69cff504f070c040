"""PLY reading and writing (ascii, binary little and big endian) with numpy only.

`read_ply(path)` returns {element_name: {property_name: array}}; list properties (mesh faces)
come back as an int32 (F, K) array when every row has the same length K (triangles) and as a
list of arrays otherwise. Malformed files raise `InputError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from jaxseg.errors import InputError, os_error
from jaxseg.io import files

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                 "u4": "uint", "f4": "float", "f8": "double"}
_FIX = "re-export or re-download the file; it must be a complete PLY (ascii or binary)"


def _parse_header_line(words: list[str], elements: list[dict[str, Any]]) -> None:
  """Adds an `element` or `property` header line to `elements` (other lines are ignored)."""
  if words[0] == "element":
    count = int(words[2])
    if count < 0:
      raise ValueError(f"negative element count {count}")
    elements.append({"name": words[1], "count": count, "props": []})
  elif words[0] == "property":
    if not elements:
      raise ValueError("property before any element")
    if words[1] == "list":
      elements[-1]["props"].append((words[4], ("list", _PLY_TYPES[words[2]],
                                                _PLY_TYPES[words[3]])))
    else:
      elements[-1]["props"].append((words[2], _PLY_TYPES[words[1]]))


def _parse_header(path: str, f) -> tuple[str, list[dict[str, Any]]]:
  magic = f.readline()
  if magic.strip() != b"ply":
    raise InputError(path, "not a PLY file (missing 'ply' magic line)", _FIX)
  fmt = None
  elements: list[dict[str, Any]] = []
  while True:
    line = f.readline()
    if not line:
      raise InputError(path, "PLY header ends before 'end_header'", _FIX)
    words = line.decode("ascii", errors="replace").split()
    if not words or words[0] in ("comment", "obj_info"):
      continue
    if words[0] == "end_header":
      break
    try:
      _parse_header_line(words, elements)
    except (IndexError, ValueError, KeyError) as e:
      raise InputError(path, f"malformed PLY header line {line[:80]!r} ({e!r})", _FIX) from e
    if words[0] == "format":
      fmt = words[1] if len(words) > 1 else None
  if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
    raise InputError(path, f"unsupported PLY format {fmt!r}", _FIX)
  return fmt, elements


def _read_binary_element(path, buf, offset, element, endian):
  props = element["props"]
  count = element["count"]
  if all(not isinstance(t, tuple) for _, t in props):
    dtype = np.dtype([(name, endian + t) for name, t in props])
    nbytes = dtype.itemsize * count
    if offset + nbytes > len(buf):
      raise InputError(path, f"file is truncated inside element {element['name']!r} "
                       f"({len(buf) - offset} bytes left, {nbytes} needed)", _FIX)
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    return {name: arr[name].copy() for name, _ in props}, offset + nbytes
  # Elements with list properties (faces). Fast path: a single list of constant length.
  if len(props) == 1:
    name, (_, count_t, item_t) = props[0]
    count_dtype, item_dtype = np.dtype(endian + count_t), np.dtype(endian + item_t)
    if count == 0:
      return {name: np.zeros((0, 3), np.int32)}, offset
    if offset + count_dtype.itemsize > len(buf):
      raise InputError(path, f"file is truncated inside element {element['name']!r}", _FIX)
    k = int(np.frombuffer(buf, count_dtype, 1, offset)[0])
    row = np.dtype([("n", count_dtype), ("v", item_dtype, (k,))])
    nbytes = row.itemsize * count
    if offset + nbytes <= len(buf):
      arr = np.frombuffer(buf, row, count, offset)
      if (arr["n"] == k).all():
        return {name: arr["v"].astype(np.int32)}, offset + nbytes
  # General slow path.
  out: dict[str, list] = {name: [] for name, _ in props}
  for _ in range(count):
    for name, t in props:
      if isinstance(t, tuple):
        count_dtype, item_dtype = np.dtype(endian + t[1]), np.dtype(endian + t[2])
        if offset + count_dtype.itemsize > len(buf):
          raise InputError(path, f"file is truncated inside element {element['name']!r}", _FIX)
        k = int(np.frombuffer(buf, count_dtype, 1, offset)[0])
        offset += count_dtype.itemsize
        if offset + k * item_dtype.itemsize > len(buf):
          raise InputError(path, f"file is truncated inside element {element['name']!r}", _FIX)
        out[name].append(np.frombuffer(buf, item_dtype, k, offset).astype(np.int32))
        offset += k * item_dtype.itemsize
      else:
        dt = np.dtype(endian + t)
        if offset + dt.itemsize > len(buf):
          raise InputError(path, f"file is truncated inside element {element['name']!r}", _FIX)
        out[name].append(np.frombuffer(buf, dt, 1, offset)[0])
        offset += dt.itemsize
  return {name: _stack(v) for name, v in out.items()}, offset


def _stack(values: list):
  if values and isinstance(values[0], np.ndarray):
    lengths = {len(v) for v in values}
    return np.stack(values).astype(np.int32) if len(lengths) == 1 else values
  return np.asarray(values)


def _ascii_table(rows: list[str], num_cols: int) -> np.ndarray | None:
  """float64 (len(rows), num_cols) parsed in one call, or None if any row is malformed."""
  if not rows:
    return np.zeros((0, num_cols))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
      values = np.loadtxt(rows, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
      return None
  return values if values.shape == (len(rows), num_cols) else None


def _read_ascii(path, lines, elements):
  data = {}
  pos = 0
  for element in elements:
    props = element["props"]
    rows = lines[pos:pos + element["count"]]
    if len(rows) < element["count"]:
      raise InputError(path, f"file is truncated inside element {element['name']!r}", _FIX)
    pos += element["count"]
    table = _ascii_table(rows, len(props)) if not any(
        isinstance(t, tuple) for _, t in props) else None
    if table is not None:
      data[element["name"]] = {name: table[:, j].astype(t) for j, (name, t) in enumerate(props)}
      continue
    values: dict[str, list] = {name: [] for name, _ in props}
    for row in rows:
      words = row.split()
      i = 0
      try:
        for name, t in props:
          if isinstance(t, tuple):
            k = int(words[i])
            values[name].append(np.asarray(words[i + 1:i + 1 + k], dtype=np.int32))
            i += 1 + k
          else:
            values[name].append(np.dtype(t).type(float(words[i])))
            i += 1
      except (IndexError, ValueError) as e:
        raise InputError(path, f"malformed ascii row in element {element['name']!r}: "
                         f"{row[:80]!r} ({e})", _FIX) from e
    data[element["name"]] = {
        name: (_stack(v) if isinstance(t, tuple) else np.asarray(v, dtype=t))
        for (name, t), v in zip(props, values.values())}
  return data


def _plausible_fraction(values: np.ndarray) -> float:
  """Fraction of float values that look like coordinates (0, or finite within 1e-6..1e7)."""
  with np.errstate(invalid="ignore", over="ignore"):
    magnitude = np.abs(values.astype(np.float64))
    ok = (magnitude == 0) | ((magnitude >= 1e-6) & (magnitude <= 1e7))
  return float(ok.mean()) if ok.size else 1.0


def _check_byte_order(path: str, element: dict[str, Any], values: dict[str, Any],
                      fmt: str) -> None:
  """InputError when the float coordinates only make sense read in the other byte order."""
  names = [n for n in ("x", "y", "z") if n in values and values[n].dtype.kind == "f"]
  if element["name"] != "vertex" or not names or not element["count"]:
    return
  sample = np.concatenate([values[n][:10000] for n in names])
  if _plausible_fraction(sample) >= 0.9:
    return
  if _plausible_fraction(sample.byteswap()) > 0.99:
    other = "binary_big_endian" if fmt == "binary_little_endian" else "binary_little_endian"
    raise InputError(path, f"the header says '{fmt}' but the coordinates are only sensible "
                     f"read as {other}", f"correct the header line to 'format {other} 1.0', "
                     "or re-export the file")


def _check_binary_rest(path: str, body: bytes, offset: int, elements: list) -> None:
  """InputError when data follows the last element the header declares."""
  rest = body[offset:]
  if not rest.strip():
    return
  first = elements[0] if elements else None
  hint = ""
  if first and first["props"] and not any(isinstance(t, tuple) for _, t in first["props"]):
    itemsize = np.dtype([(n, t) for n, t in first["props"]]).itemsize
    hint = f" (as much as {len(rest) // itemsize} more {first['name']} rows)"
  declared = ", ".join(f"{e['count']} {e['name']}" for e in elements)
  raise InputError(path, f"the header declares {declared} but {len(rest)} more bytes of data "
                   f"follow{hint}", "fix the element counts in the header, or re-export the file")


def _looks_binary(body: bytes) -> bool:
  """Whether the start of a body holds bytes no ascii PLY has (NUL, or over 1% control or
  non-ascii bytes)."""
  head = np.frombuffer(body[:65536], np.uint8)
  control = (head < 32) & ~np.isin(head, (9, 10, 13))
  return bool((head == 0).any() or (control | (head > 126)).sum() > head.size // 100)


def read_ply(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
  """Reads a PLY file into {element: {property: array}}.

  Raises InputError for a missing or unreadable file, a header that is not PLY, data that is
  shorter or longer than the header's element counts, a binary body under an ascii header
  and binary floats whose byte order contradicts the header.
  """
  path = os.fspath(path)
  files.require_file(path, "PLY file", "check the path and the dataset root")
  try:
    with open(path, "rb") as f:
      fmt, elements = _parse_header(path, f)
      body = f.read()
  except OSError as e:
    raise os_error(path, e, what="PLY file") from e
  if fmt == "ascii":
    if _looks_binary(body):
      raise InputError(path, "the header says 'format ascii' but the data is binary",
                       "correct the header line to 'format binary_little_endian 1.0' (or "
                       "binary_big_endian), or re-export the file")
    lines = [ln for ln in body.decode("ascii", errors="replace").splitlines() if ln.strip()]
    declared = sum(e["count"] for e in elements)
    if len(lines) > declared:
      counts = ", ".join(f"{e['count']} {e['name']}" for e in elements)
      raise InputError(path, f"the header declares {counts} ({declared} data lines) but the "
                       f"file has {len(lines)} data lines",
                       "fix the element counts in the header, or re-export the file")
    return _read_ascii(path, lines, elements)
  endian = "<" if fmt == "binary_little_endian" else ">"
  data, offset = {}, 0
  for element in elements:
    data[element["name"]], offset = _read_binary_element(path, body, offset, element, endian)
    _check_byte_order(path, element, data[element["name"]], fmt)
  _check_binary_rest(path, body, offset, elements)
  return data


def write_ply(path: str | os.PathLike, vertex: dict[str, np.ndarray],
              faces: np.ndarray | None = None, binary: bool = True) -> None:
  """Writes vertices (dict of equal-length 1-D arrays, order kept) and optional int (F, 3)
  triangle faces as a binary little-endian (default) or ascii PLY."""
  path = os.fspath(path)
  names = list(vertex)
  n = len(vertex[names[0]])
  header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
            f"element vertex {n}"]
  arrays = [np.asarray(vertex[k]) for k in names]
  for name, a in zip(names, arrays):
    if len(a) != n:
      raise ValueError(f"vertex property {name!r} has {len(a)} rows, expected {n}")
    header.append(f"property {_NUMPY_TO_PLY[a.dtype.str[1:]]} {name}")
  if faces is not None:
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
  header.append("end_header")
  with open(path, "wb") as f:
    f.write(("\n".join(header) + "\n").encode("ascii"))
    if binary:
      rec = np.empty(n, dtype=[(k, "<" + a.dtype.str[1:]) for k, a in zip(names, arrays)])
      for k, a in zip(names, arrays):
        rec[k] = a
      f.write(rec.tobytes())
      if faces is not None:
        faces = np.asarray(faces, np.int32)
        frec = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (faces.shape[1],))])
        frec["n"] = faces.shape[1]
        frec["v"] = faces
        f.write(frec.tobytes())
    else:
      for i in range(n):
        f.write((" ".join(str(a[i]) for a in arrays) + "\n").encode("ascii"))
      if faces is not None:
        for face in np.asarray(faces):
          f.write((f"{len(face)} " + " ".join(str(int(v)) for v in face) + "\n").encode())
