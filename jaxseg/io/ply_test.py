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


# Probes of the reliability report (../shared/notes/reliability_2026-12.md), one test each.


def _cloud_ply(path, n, declared, binary=True, endian="<", fmt=None):
  """x y z float cloud of `n` points whose header declares `declared` vertices."""
  xyz = np.random.default_rng(3).uniform(-4, 4, (n, 3)).astype(endian + "f4")
  fmt = fmt or ("ascii" if not binary else
                "binary_little_endian" if endian == "<" else "binary_big_endian")
  header = (f"ply\nformat {fmt} 1.0\nelement vertex {declared}\nproperty float x\n"
            "property float y\nproperty float z\nend_header\n").encode()
  body = xyz.tobytes() if binary else "".join(
      f"{a} {b} {c}\n" for a, b, c in xyz.astype(float)).encode()
  with open(path, "wb") as f:
    f.write(header + body)
  return xyz


@pytest.mark.parametrize("binary", [True, False])
def test_header_count_smaller_than_the_data_is_an_error(tmp_path, binary):
  """cu_badhdr_count_small: 10,000 of 20,000 points were read and the rest ignored."""
  _cloud_ply(tmp_path / "c.ply", 20000, 10000, binary=binary)
  with pytest.raises(InputError, match="the header declares 10000 vertex") as e:
    read_ply(tmp_path / "c.ply")
  assert "element counts" in e.value.fix


def test_binary_data_under_an_ascii_header_is_named(tmp_path):
  """A binary PLY labelled ascii was reported as 'truncated'."""
  _cloud_ply(tmp_path / "c.ply", 100, 100, fmt="ascii")
  with pytest.raises(InputError, match="says 'format ascii' but the data is binary"):
    read_ply(tmp_path / "c.ply")


def test_wrong_byte_order_is_named(tmp_path):
  """A wrong endianness was reported as 'NaN coordinates'."""
  _cloud_ply(tmp_path / "c.ply", 500, 500, endian=">", fmt="binary_little_endian")
  with pytest.raises(InputError, match="only sensible read as binary_big_endian") as e:
    read_ply(tmp_path / "c.ply")
  assert "format binary_big_endian 1.0" in e.value.fix
  xyz = _cloud_ply(tmp_path / "ok.ply", 500, 500, endian=">")
  np.testing.assert_array_equal(read_ply(tmp_path / "ok.ply")["vertex"]["x"], xyz[:, 0])
