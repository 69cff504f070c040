"""Tests for jaxseg.io.coords and jaxseg.io.export: georeferenced clouds keep their precision."""

import logging

import numpy as np

from jaxseg.data.scene import Frames, Scene
from jaxseg.io import coords as coords_lib
from jaxseg.io.export import write_scene_ply
from jaxseg.io.ply import read_ply


def _utm_cloud(n=20000, seed=0):
  """float64 (n, 3) room-sized cloud at a UTM-like offset, 0.3 mm apart in y (probe
  cu_utm_offset)."""
  rng = np.random.default_rng(seed)
  local = np.c_[rng.uniform(0, 8, n), np.arange(n) * 0.0003, rng.uniform(0, 3, n)]
  return local + [431234.567, 5412345.678, 250.0]


def test_large_offsets_are_recentred_in_float64(caplog):
  cloud = _utm_cloud()
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    coords, origin = coords_lib.to_float32_coords(cloud, "utm.npy")
  assert coords.dtype == np.float32
  np.testing.assert_array_equal(origin, np.floor(cloud.min(axis=0)))
  # Sub-millimetre agreement; a direct float32 cast is off by up to 25 cm at this northing.
  assert np.abs(coords + origin - cloud).max() < 1e-4
  assert np.abs(cloud.astype(np.float32) - cloud).max() > 0.1
  assert len(np.unique(coords[:, 1])) == len(np.unique(cloud[:, 1]))
  assert any("recentred" in r.getMessage() for r in caplog.records)


def test_small_coordinates_are_cast_as_they_are():
  cloud = np.random.default_rng(1).uniform(-20, 20, (100, 3))
  coords, origin = coords_lib.to_float32_coords(cloud, "room.npy")
  assert origin is None
  np.testing.assert_array_equal(coords, cloud.astype(np.float32))


def test_millimetre_clouds_get_a_units_warning(caplog):
  cloud = np.random.default_rng(2).uniform(0, 6000, (100, 3))  # a 6 m room in millimetres
  with caplog.at_level(logging.WARNING, logger="jaxseg"):
    coords_lib.to_float32_coords(cloud, "mm.ply")
  assert any("millimetres" in r.getMessage() and "divide them by 1000" in r.getMessage()
             for r in caplog.records)


def test_poses_and_alignment_follow_the_origin():
  origin = np.array([1000.0, 2000.0, 3.0])
  pose = np.eye(4)
  pose[:3, 3] = [1001.0, 2002.0, 4.5]
  frames = Frames([""], [""], pose[None].astype(np.float32), np.eye(3), np.eye(3), (1, 1),
                  (1, 1))
  moved = coords_lib.recentre_frames(frames, origin)
  np.testing.assert_allclose(moved.poses[0, :3, 3], [1.0, 2.0, 1.5])
  align = np.eye(4)
  align[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
  align[:3, 3] = [5, 6, 7]
  point = np.array([1001.0, 2002.0, 4.5, 1.0])
  local = point - np.r_[origin, 0]
  np.testing.assert_allclose(coords_lib.recentre_alignment(align, origin) @ local, align @ point,
                             atol=1e-3)


def test_export_restores_the_source_coordinates(tmp_path):
  cloud = _utm_cloud(1000)
  coords, origin = coords_lib.to_float32_coords(cloud, "utm.npy")
  scene = Scene("utm", coords, np.zeros((1000, 3), np.uint8), origin=origin).validate()
  write_scene_ply(tmp_path / "out.ply", scene)
  vertex = read_ply(tmp_path / "out.ply")["vertex"]
  assert vertex["x"].dtype == np.float64
  np.testing.assert_allclose(np.c_[vertex["x"], vertex["y"], vertex["z"]], cloud, atol=1e-4)
