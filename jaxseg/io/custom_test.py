"""Tests for jaxseg.io.custom: clouds written here in each supported format."""

import logging
import os

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io import custom
from jaxseg.io.ply import write_ply


def _cloud(n=25, seed=0):
  """float32 xyz (n, 3), uint8 rgb (n, 3), float32 unit normals (n, 3)."""
  rng = np.random.default_rng(seed)
  normals = rng.normal(size=(n, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  return (rng.normal(size=(n, 3)).astype(np.float32),
          rng.integers(0, 256, (n, 3)).astype(np.uint8), normals.astype(np.float32))


def test_ascii_ply_with_colours_and_normals(tmp_path):
  xyz, rgb, normals = _cloud()
  path = tmp_path / "room.ply"
  with open(path, "w") as f:
    f.write(f"ply\nformat ascii 1.0\nelement vertex {len(xyz)}\nproperty float x\n"
            "property float y\nproperty float z\nproperty float nx\nproperty float ny\n"
            "property float nz\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
            "end_header\n")
    for p, n, c in zip(xyz, normals, rgb):
      f.write(" ".join(repr(float(v)) for v in (*p, *n)) + " " + " ".join(map(str, c)) + "\n")
  scene = custom.read_custom_cloud(str(path))
  np.testing.assert_array_equal(scene.coords, xyz)
  np.testing.assert_array_equal(scene.colors, rgb)
  np.testing.assert_array_equal(scene.normals, normals)
  assert scene.labels is None and scene.name == "room.ply"


def _pcd_header(fields, sizes, types, n, data):
  return (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS {fields}\n"
          f"SIZE {sizes}\nTYPE {types}\nCOUNT {' '.join('1' * len(fields.split()))}\n"
          f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n")


def _packed_rgb(rgb):
  packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
  return packed.astype(np.uint32).view(np.float32)


def test_binary_pcd_packed_rgb(tmp_path):
  xyz, rgb, _ = _cloud()
  rec = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
  rec["x"], rec["y"], rec["z"] = xyz.T
  rec["rgb"] = _packed_rgb(rgb)
  path = tmp_path / "a.pcd"
  path.write_bytes(_pcd_header("x y z rgb", "4 4 4 4", "F F F F", len(xyz), "binary").encode()
                   + rec.tobytes())
  scene = custom.read_custom_cloud(str(path))
  np.testing.assert_array_equal(scene.coords, xyz)
  np.testing.assert_array_equal(scene.colors, rgb)


def test_ascii_pcd_separate_rgb_and_packed_rgb(tmp_path):
  xyz, rgb, _ = _cloud(seed=1)
  path = tmp_path / "b.pcd"
  with open(path, "w") as f:
    f.write(_pcd_header("x y z r g b", "4 4 4 1 1 1", "F F F U U U", len(xyz), "ascii"))
    for p, c in zip(xyz, rgb):
      f.write(" ".join(repr(float(v)) for v in p) + " " + " ".join(map(str, c)) + "\n")
  scene = custom.read_custom_cloud(str(path))
  np.testing.assert_array_equal(scene.coords, xyz)
  np.testing.assert_array_equal(scene.colors, rgb)
  path = tmp_path / "c.pcd"
  with open(path, "w") as f:
    f.write(_pcd_header("x y z rgb", "4 4 4 4", "F F F F", len(xyz), "ascii"))
    for p, packed in zip(xyz, _packed_rgb(rgb)):
      f.write(" ".join(repr(float(v)) for v in p) + f" {float(packed)!r}\n")
  np.testing.assert_array_equal(custom.read_custom_cloud(str(path)).colors, rgb)


def test_bad_pcd(tmp_path):
  path = tmp_path / "z.pcd"
  path.write_bytes(_pcd_header("x y z", "4 4 4", "F F F", 5, "binary_compressed").encode() +
                   b"\x00" * 16)
  with pytest.raises(InputError, match="binary_compressed") as e:
    custom.read_custom_cloud(str(path))
  assert "Fix: convert" in str(e.value)
  path.write_bytes(_pcd_header("x y z", "4 4 4", "F F F", 5, "binary").encode() + b"\x00" * 16)
  with pytest.raises(InputError, match="truncated"):
    custom.read_custom_cloud(str(path))
  path.write_bytes(b"VERSION 0.7\nFIELDS x y z\n")
  with pytest.raises(InputError, match="DATA"):
    custom.read_custom_cloud(str(path))


def test_npy_and_missing_colours_are_grey(tmp_path):
  xyz, rgb, _ = _cloud(seed=2)
  np.save(tmp_path / "a.npy", xyz)
  scene = custom.read_custom_cloud(str(tmp_path / "a.npy"))
  np.testing.assert_array_equal(scene.coords, xyz)
  assert (scene.colors == 128).all()
  np.save(tmp_path / "b.npy", np.concatenate([xyz, rgb / 255.0], 1))  # colours as fractions
  np.testing.assert_array_equal(custom.read_custom_cloud(str(tmp_path / "b.npy")).colors, rgb)
  np.save(tmp_path / "c.npy", np.zeros((4, 5)))
  with pytest.raises(InputError, match=r"\(4, 5\)"):
    custom.read_custom_cloud(str(tmp_path / "c.npy"))


@pytest.mark.parametrize("separator,header", [(" ", ""), (",", "x,y,z,r,g,b\n"),
                                              ("\t", "# x y z r g b\n")])
def test_text_clouds(tmp_path, separator, header):
  xyz, rgb, _ = _cloud(seed=3)
  path = tmp_path / "cloud.txt"
  with open(path, "w") as f:
    f.write(header)
    for p, c in zip(xyz, rgb):
      f.write(separator.join([repr(float(v)) for v in p] + [str(v) for v in c]) + "\n")
  scene = custom.read_custom_cloud(str(path))
  np.testing.assert_array_equal(scene.coords, xyz)
  np.testing.assert_array_equal(scene.colors, rgb)


def test_bad_custom_clouds(tmp_path):
  nan_cloud = np.zeros((6, 3), np.float32)
  nan_cloud[2, 0] = np.nan
  np.save(tmp_path / "nan.npy", nan_cloud)
  with pytest.raises(InputError, match="NaN or inf") as e:
    custom.read_custom_cloud(str(tmp_path / "nan.npy"))
  assert "nan.npy" in str(e.value)
  np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
  with pytest.raises(InputError, match="no points"):
    custom.read_custom_cloud(str(tmp_path / "empty.npy"))
  (tmp_path / "empty.txt").write_text("\n")
  with pytest.raises(InputError, match="no rows"):
    custom.read_custom_cloud(str(tmp_path / "empty.txt"))
  (tmp_path / "cloud.obj").write_text("v 1 2 3\n")
  with pytest.raises(InputError, match="unsupported extension"):
    custom.read_custom_cloud(str(tmp_path / "cloud.obj"))


def test_list_custom_scenes(tmp_path):
  for name in ("b.ply", "a.npy", "notes.md"):
    (tmp_path / name).write_text("")
  assert custom.list_custom_scenes(str(tmp_path)) == ["a.npy", "b.ply"]
  assert custom.list_custom_scenes(os.path.join(tmp_path, "b.ply")) == ["b.ply"]
  with pytest.raises(InputError):
    custom.list_custom_scenes(str(tmp_path / "nope"))


# Probes of the reliability report (../shared/notes/reliability_2026-12.md), one test each.


def test_16_bit_colours_are_scaled_not_white(tmp_path):
  """cu_rgb65535_npy: 16-bit colours were clipped to 255, every point white."""
  xyz, rgb, _ = _cloud(seed=4)
  np.save(tmp_path / "a.npy", np.concatenate([xyz, rgb.astype(np.float64) * 257], 1))
  np.testing.assert_array_equal(custom.read_custom_cloud(str(tmp_path / "a.npy")).colors, rgb)
  vertex = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "red": rgb[:, 0].astype(np.uint16) * 257, "green": rgb[:, 1].astype(np.uint16) * 257,
            "blue": rgb[:, 2].astype(np.uint16) * 257}
  write_ply(tmp_path / "b.ply", vertex)
  np.testing.assert_array_equal(custom.read_custom_cloud(str(tmp_path / "b.ply")).colors, rgb)


def test_georeferenced_cloud_keeps_millimetres(tmp_path):
  """cu_utm_offset: a float64 cloud at a UTM offset kept 13 distinct y values of 19,874."""
  rng = np.random.default_rng(5)
  local = np.c_[rng.uniform(0, 8, 20000), np.arange(20000) * 0.0003, rng.uniform(0, 3, 20000)]
  cloud = local + [431234.5, 5412345.5, 250.0]
  np.save(tmp_path / "utm.npy", cloud)
  scene = custom.read_custom_cloud(str(tmp_path / "utm.npy"))
  assert len(np.unique(scene.coords[:, 1])) == 20000
  np.testing.assert_allclose(scene.source_coords(), cloud, atol=1e-4)


def test_dangling_and_looping_links_are_listed_and_reported(tmp_path):
  """cu_dangling, cu_symloop_file: such .ply entries were ignored when listing."""
  np.save(tmp_path / "good.npy", _cloud()[0])
  os.symlink(tmp_path / "moved.ply", tmp_path / "dangling.ply")
  os.symlink(tmp_path / "loop.ply", tmp_path / "loop.ply")
  assert custom.list_custom_scenes(str(tmp_path)) == ["dangling.ply", "good.npy", "loop.ply"]
  with pytest.raises(InputError, match="dangling symbolic link"):
    custom.read_custom_cloud(str(tmp_path / "dangling.ply"))
  with pytest.raises(InputError, match="symbolic link loop"):
    custom.read_custom_cloud(str(tmp_path / "loop.ply"))


def test_root_that_is_a_link_loop_is_not_called_missing(tmp_path):
  """A symlink-loop root was reported as 'does not exist'."""
  os.symlink(tmp_path / "root", tmp_path / "root")
  with pytest.raises(InputError, match="symbolic link loop"):
    custom.list_custom_scenes(str(tmp_path / "root"))


def test_transposed_npy_is_named(tmp_path):
  np.save(tmp_path / "t.npy", np.zeros((6, 50), np.float32))
  with pytest.raises(InputError, match="transposed") as e:
    custom.read_custom_cloud(str(tmp_path / "t.npy"))
  assert "array.T" in e.value.fix


def test_non_npy_file_gets_no_unpickling_advice(tmp_path):
  """A non-npy file relayed numpy's advice to load it 'unsafely' with allow_pickle."""
  (tmp_path / "cloud.npy").write_text("0 0 0\n1 1 1\n")
  with pytest.raises(InputError, match="not a .npy file") as e:
    custom.read_custom_cloud(str(tmp_path / "cloud.npy"))
  assert "allow_pickle" not in str(e.value)


def test_other_files_in_the_folder_are_named(tmp_path, caplog):
  np.save(tmp_path / "a.npy", _cloud()[0])
  (tmp_path / "scan.las").write_bytes(b"LASF")
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    assert custom.list_custom_scenes(str(tmp_path)) == ["a.npy"]
  assert any("scan.las" in r.getMessage() and r.levelno == logging.WARNING
             for r in caplog.records)
