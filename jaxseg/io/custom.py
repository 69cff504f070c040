"""A user's own point cloud: .ply, .pcd, .npy or .txt/.xyz/.csv, without labels.

- .ply: vertex x, y, z [, red, green, blue] [, nx, ny, nz] (ascii or binary)
- .pcd: PCD v0.7, DATA ascii or binary, FIELDS x y z [rgb | rgba (packed) | r g b]
  [normal_x normal_y normal_z]; binary_compressed raises InputError (convert it first)
- .npy: float (N, 3) xyz or (N, 6) xyz rgb
- .txt / .xyz / .csv: whitespace or comma separated x y z [r g b] per line (a non-numeric
  first line is taken as a header)
Colours are converted by `jaxseg.io.colors` (0..255, float 0..1 or 16-bit, each logged);
missing colours are grey 128. Coordinates far from zero (georeferenced) are recentred in
float64 (`jaxseg.io.coords`), the offset kept in `Scene.origin`.
"""

from __future__ import annotations

import os

import numpy as np

from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import to_float32_coords
from jaxseg.io.npy import load_npy
from jaxseg.io.ply import read_ply
from jaxseg.io.text_table import parse_numeric_text
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.custom")
EXTENSIONS = (".ply", ".pcd", ".npy", ".txt", ".xyz", ".csv")
# Point-cloud formats a user may expect to be read; a folder holding them gets a warning.
_OTHER_CLOUD_EXTENSIONS = (".las", ".laz", ".e57", ".obj", ".off", ".stl", ".pts", ".ptx",
                           ".bin", ".h5", ".hdf5", ".npz", ".pcd.gz")
_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4",
              ("I", 8): "i8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_PCD_FIX = "re-export the cloud as a PCD v0.7 file (DATA ascii or binary), or as .ply/.npy"


def list_custom_scenes(root: str) -> list[str]:
  """File names of the clouds in folder `root` (or [basename] when `root` is one file), sorted.

  Every entry with a cloud extension is listed, including dangling or looping links (reading
  them reports the link); other files are named in a log line, never dropped silently.
  """
  if os.path.isfile(root):
    return [os.path.basename(root)]
  files.require_dir(root, "data.root", "pass a point-cloud file or a folder of them")
  names = sorted(os.listdir(root))
  clouds = [f for f in names if f.lower().endswith(EXTENSIONS)
            and not os.path.isdir(os.path.join(root, f))]
  ignored = [f for f in names if f not in clouds and not f.startswith(".")]
  if ignored:
    other_clouds = [f for f in ignored if f.lower().endswith(_OTHER_CLOUD_EXTENSIONS)]
    log = _LOG.warning if other_clouds else _LOG.info
    log("%s: ignoring %d entries that are not %s clouds: %s%s", root, len(ignored),
        "/".join(EXTENSIONS), ", ".join(ignored[:10]), ", ..." if len(ignored) > 10 else "")
  return clouds


def read_custom_cloud(path: str, name: str | None = None) -> Scene:
  """Reads one cloud file; returns an unlabelled Scene (coords float32 (N, 3), colors uint8
  (N, 3), normals float32 (N, 3) when the file has them)."""
  path = files.require_file(os.fspath(path), "point-cloud file", "check the path")
  extension = os.path.splitext(path)[1].lower()
  if extension == ".ply":
    coords, colors, normals = _read_ply_cloud(path)
  elif extension == ".pcd":
    coords, colors, normals = _read_pcd(path)
  elif extension == ".npy":
    coords, colors, normals = _read_npy(path)
  elif extension in (".txt", ".xyz", ".csv"):
    coords, colors, normals = _read_text(path)
  else:
    raise InputError(path, f"unsupported extension {extension!r}",
                     f"convert the cloud to one of {', '.join(EXTENSIONS)}")
  n = coords.shape[0]
  colors = np.full((n, 3), 128, np.uint8) if colors is None else colors_to_uint8(colors, path)
  coords, origin = to_float32_coords(coords, path)
  return Scene(name=name or os.path.basename(path), coords=coords, colors=colors,
               normals=None if normals is None else normals.astype(np.float32), origin=origin,
               source=path).validate()


def _pick(props: dict, names_options: tuple[tuple[str, ...], ...]) -> np.ndarray | None:
  """Stacks the first complete set of property names found, else None."""
  for names in names_options:
    if all(k in props for k in names):
      return np.stack([np.asarray(props[k]) for k in names], axis=1)
  return None


def _read_ply_cloud(path):
  vertex = read_ply(path).get("vertex")
  if vertex is None:
    raise InputError(path, "the PLY has no 'vertex' element", "export the points as vertices")
  coords = _pick(vertex, (("x", "y", "z"),))
  if coords is None:
    raise InputError(path, "vertices lack x, y, z", "export x, y, z per vertex")
  colors = _pick(vertex, (("red", "green", "blue"), ("r", "g", "b"),
                          ("diffuse_red", "diffuse_green", "diffuse_blue")))
  normals = _pick(vertex, (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z")))
  return coords, colors, normals


def _read_npy(path):
  array = load_npy(path, "save the cloud with numpy.save(path, array) from a numeric (N, 3) "
                   "or (N, 6) array")
  if array.ndim == 2 and array.shape[0] in (3, 6) and array.shape[1] > 6:
    raise InputError(path, f"array of shape {array.shape} looks transposed (one row per "
                     "coordinate instead of one row per point)",
                     "save the transposed array, numpy.save(path, array.T)")
  if array.ndim != 2 or array.shape[1] not in (3, 6) or array.dtype.kind not in "fiu":
    raise InputError(path, f"array of shape {array.shape} and dtype {array.dtype}",
                     "save a numeric (N, 3) xyz or (N, 6) xyz rgb array")
  return array[:, :3], (array[:, 3:6] if array.shape[1] == 6 else None), None


def _read_text(path):
  text = files.read_bytes(path, "text cloud", "check the path").decode("utf-8",
                                                                       errors="replace")
  lines = text.split("\n", 1)
  delimiter = "," if "," in lines[0] else None
  first_line = 1
  try:
    [float(w) for w in lines[0].split(delimiter)]
  except ValueError:
    text, first_line = (lines[1] if len(lines) > 1 else ""), 2
  table = parse_numeric_text(text, path, min_cols=3, delimiter=delimiter, first_line=first_line)
  if table.shape[1] not in (3, 6):
    _LOG.warning("%s: %d columns; using x y z%s and ignoring the rest", path, table.shape[1],
                 " r g b" if table.shape[1] > 6 else "")
  return table[:, :3], (table[:, 3:6] if table.shape[1] >= 6 else None), None


def _read_pcd(path):
  raw = files.read_bytes(path, "PCD file", "check the path")
  header, offset = {}, 0
  while "DATA" not in header:
    end = raw.find(b"\n", offset)
    if end < 0:
      raise InputError(path, "PCD header ends before the DATA line", _PCD_FIX)
    line = raw[offset:end].decode("ascii", errors="replace").strip()
    offset = end + 1
    if line and not line.startswith("#"):
      key, _, value = line.partition(" ")
      header[key.upper()] = value.split()
  try:
    fields = header["FIELDS"]
    sizes = [int(v) for v in header["SIZE"]]
    types = header["TYPE"]
    counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
    num_points = int(header["POINTS"][0]) if "POINTS" in header else (
        int(header["WIDTH"][0]) * int(header.get("HEIGHT", ["1"])[0]))
    data_format = header["DATA"][0].lower()
    dtype = np.dtype([(f"{name}__{i}", _PCD_TYPES[(t.upper(), s)], (c,))
                      for i, (name, s, t, c) in enumerate(zip(fields, sizes, types, counts))])
  except (KeyError, ValueError, IndexError) as e:
    raise InputError(path, f"malformed PCD header ({e!r})", _PCD_FIX) from e
  if not len(fields) == len(sizes) == len(types) == len(counts):
    raise InputError(path, "FIELDS, SIZE, TYPE and COUNT differ in length", _PCD_FIX)
  if data_format == "binary_compressed":
    raise InputError(path, "DATA binary_compressed is not supported",
                     "convert it, e.g. `pcl_convert_pcd_ascii_binary in.pcd out.pcd 1` or "
                     "open3d: o3d.io.write_point_cloud('out.pcd', o3d.io.read_point_cloud("
                     "'in.pcd'), write_ascii=False, compressed=False)")
  if data_format == "binary":
    if len(raw) - offset < dtype.itemsize * num_points:
      raise InputError(path, f"file is truncated ({len(raw) - offset} data bytes, "
                       f"{dtype.itemsize * num_points} needed for {num_points} points)", _PCD_FIX)
    record = np.frombuffer(raw, dtype, num_points, offset)
    columns = {name: record[f"{name}__{i}"][:, 0] for i, name in enumerate(fields)}
  elif data_format == "ascii":
    table = parse_numeric_text(raw[offset:].decode("ascii", errors="replace"), path,
                               min_cols=sum(counts), max_bad_lines=0)
    if table.shape != (num_points, sum(counts)):
      raise InputError(path, f"{table.shape[0]} rows of {table.shape[1]} values, header says "
                       f"{num_points} points of {sum(counts)}", _PCD_FIX)
    starts = np.cumsum([0] + counts[:-1])
    columns = {name: table[:, s].astype(dtype[f"{name}__{i}"].base)
               for i, (name, s) in enumerate(zip(fields, starts))}
  else:
    raise InputError(path, f"unknown PCD DATA format {data_format!r}", _PCD_FIX)
  coords = _pick(columns, (("x", "y", "z"),))
  if coords is None:
    raise InputError(path, "FIELDS lack x y z", _PCD_FIX)
  packed_name = "rgb" if "rgb" in columns else ("rgba" if "rgba" in columns else None)
  if packed_name is not None:
    packed = columns[packed_name]
    packed = packed.astype(np.float32).view(np.uint32) if packed.dtype.kind == "f" else (
        packed.astype(np.uint32))
    colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1)
  else:
    colors = _pick(columns, (("r", "g", "b"), ("red", "green", "blue")))
  normals = _pick(columns, (("normal_x", "normal_y", "normal_z"), ("nx", "ny", "nz")))
  return coords, colors, normals
