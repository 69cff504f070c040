"""Tests for jaxseg.io.ply against PLY files written by hand with numpy."""

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io.ply import read_ply, write_ply


def _vertices(n, seed=0):
  rng = np.random.default_rng(seed)
  return {"x": rng.normal(size=n).astype(np.float32), "y": rng.normal(size=n).astype(np.float32),
          "z": rng.normal(size=n).astype(np.float32),
          "red": rng.integers(0, 256, n).astype(np.uint8),
          "label": rng.integers(0, 41, n).astype(np.uint16)}


def _write_binary_by_hand(path, vertex, faces, endian):
  """Writes a binary PLY with a numpy structured array (independent of write_ply)."""
  fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
  header = (f"ply\nformat {fmt} 1.0\ncomment made by hand\nelement vertex {len(vertex['x'])}\n"
            "property float x\nproperty float y\nproperty float z\nproperty uchar red\n"
            f"property ushort label\nelement face {len(faces)}\n"
            "property list uchar int vertex_indices\nend_header\n")
  rec = np.empty(len(vertex["x"]), dtype=[("x", endian + "f4"), ("y", endian + "f4"),
                                          ("z", endian + "f4"), ("red", "u1"),
                                          ("label", endian + "u2")])
  for k in rec.dtype.names:
    rec[k] = vertex[k]
  frec = np.empty(len(faces), dtype=[("n", "u1"), ("v", endian + "i4", (3,))])
  frec["n"], frec["v"] = 3, faces
  with open(path, "wb") as f:
    f.write(header.encode() + rec.tobytes() + frec.tobytes())


@pytest.mark.parametrize("endian", ["<", ">"])
def test_reads_binary_written_by_hand(tmp_path, endian):
  vertex = _vertices(50)
  faces = np.random.default_rng(1).integers(0, 50, (30, 3))
  path = tmp_path / "mesh.ply"
  _write_binary_by_hand(path, vertex, faces, endian)
  data = read_ply(path)
  for k, v in vertex.items():
    np.testing.assert_array_equal(data["vertex"][k], v)
  np.testing.assert_array_equal(data["face"]["vertex_indices"], faces)


def test_reads_ascii_written_by_hand(tmp_path):
  path = tmp_path / "cloud.ply"
  path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                  "property float z\nproperty uchar red\nelement face 2\n"
                  "property list uchar int vertex_indices\nend_header\n"
                  "0.5 1 -2 7\n1.25 0 3 255\n-1 -1 -1 0\n3 0 1 2\n4 0 1 2 0\n")
  data = read_ply(path)
  np.testing.assert_array_equal(data["vertex"]["x"], np.float32([0.5, 1.25, -1]))
  np.testing.assert_array_equal(data["vertex"]["z"], np.float32([-2, 3, -1]))
  np.testing.assert_array_equal(data["vertex"]["red"], np.uint8([7, 255, 0]))
  assert data["vertex"]["red"].dtype == np.uint8
  faces = data["face"]["vertex_indices"]  # mixed triangle / quad -> list of rows
  assert [f.tolist() for f in faces] == [[0, 1, 2], [0, 1, 2, 0]]


@pytest.mark.parametrize("binary", [True, False])
def test_write_then_read_round_trip(tmp_path, binary):
  vertex = _vertices(20, seed=3)
  faces = np.arange(18).reshape(6, 3)
  write_ply(tmp_path / "a.ply", vertex, faces, binary=binary)
  data = read_ply(tmp_path / "a.ply")
  for k, v in vertex.items():
    np.testing.assert_allclose(data["vertex"][k], v, rtol=1e-6)
  np.testing.assert_array_equal(data["face"]["vertex_indices"], faces)


def test_not_a_ply(tmp_path):
  path = tmp_path / "x.ply"
  path.write_bytes(b"\x89PNG\r\n garbage")
  with pytest.raises(InputError, match="not a PLY"):
    read_ply(path)


def test_truncated_binary_vertices(tmp_path):
  path = tmp_path / "t.ply"
  _write_binary_by_hand(path, _vertices(100), np.zeros((10, 3), int), "<")
  path.write_bytes(path.read_bytes()[:400])
  with pytest.raises(InputError, match="truncated") as e:
    read_ply(path)
  assert str(path) in str(e.value) and "Fix:" in str(e.value)


def test_truncated_binary_faces(tmp_path):
  path = tmp_path / "t.ply"
  _write_binary_by_hand(path, _vertices(10), np.zeros((10, 3), int), "<")
  path.write_bytes(path.read_bytes()[:-7])
  with pytest.raises(InputError, match="truncated"):
    read_ply(path)


def test_truncated_header_and_ascii_body(tmp_path):
  path = tmp_path / "h.ply"
  path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n")
  with pytest.raises(InputError, match="end_header"):
    read_ply(path)
  path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n2\n")
  with pytest.raises(InputError, match="truncated"):
    read_ply(path)


@pytest.mark.parametrize("line", ["element vertex many", "property float128 x",
                                  "element vertex", "format"])
def test_malformed_header_line(tmp_path, line):
  path = tmp_path / "m.ply"
  path.write_text(f"ply\nformat ascii 1.0\nelement vertex 1\n{line}\nend_header\n1\n")
  with pytest.raises(InputError, match="PLY"):
    read_ply(path)


def test_malformed_ascii_row(tmp_path):
  path = tmp_path / "r.ply"
  path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                  "end_header\n1 2\n3 oops\n")
  with pytest.raises(InputError, match="malformed ascii row"):
    read_ply(path)


def test_missing_file(tmp_path):
  with pytest.raises(InputError, match="does not exist"):
    read_ply(tmp_path / "none.ply")
