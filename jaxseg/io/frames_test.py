"""Tests for jaxseg.io.frames (matrix files, intrinsics scaling, pose filtering)."""

import logging

import numpy as np
import pytest
from PIL import Image

from jaxseg.errors import InputError
from jaxseg.io import frames


def test_scale_intrinsics_matches_pixel_mapping():
  """A colour pixel maps to depth pixel (u * sx, v * sy); check through projection."""
  k = np.array([[1169.6, 0, 646.3], [0, 1167.1, 489.9], [0, 0, 1]])
  scaled = frames.scale_intrinsics(k, (1296, 968), (640, 480)).astype(np.float64)
  point = np.array([0.3, -0.2, 2.0])
  u_color = k @ point / point[2]
  u_depth = scaled @ point / point[2]
  np.testing.assert_allclose(u_depth[:2], u_color[:2] * [640 / 1296, 480 / 968], rtol=1e-6)


def test_read_matrix_and_intrinsics(tmp_path):
  path = tmp_path / "m.txt"
  m = np.arange(16, dtype=float).reshape(4, 4) / 7
  np.savetxt(path, m)
  np.testing.assert_allclose(frames.read_matrix(path, fix="x"), m)
  path.write_text("1 2 3\n")
  with pytest.raises(InputError, match="holds 3 numbers"):
    frames.read_matrix(path, fix="x")
  path.write_text("0 0 1 0\n0 0 1 0\n0 0 1 0\n0 0 0 1\n")
  with pytest.raises(InputError, match="invalid intrinsics"):
    frames.read_intrinsics(path)


def test_frame_ids_sort_numerically(tmp_path):
  for name in ("10.txt", "2.txt", "0.txt", "intrinsic.txt", "3.jpg"):
    (tmp_path / name).write_text("")
  assert frames.frame_ids(str(tmp_path), ".txt") == ["0", "2", "10", "intrinsic"]
  assert frames.frame_ids(str(tmp_path / "missing"), ".txt") == []


def test_assemble_drops_non_finite_poses(tmp_path, caplog):
  poses = [np.eye(4), np.full((4, 4), -np.inf), np.eye(4) * 2]
  pose_paths, color_paths, depth_paths = [], [], []
  for i, pose in enumerate(poses):
    pose_paths.append(str(tmp_path / f"{i}.txt"))
    np.savetxt(pose_paths[-1], pose)
    color_paths.append(str(tmp_path / f"{i}.jpg"))
    Image.fromarray(np.zeros((8, 20, 3), np.uint8)).save(color_paths[-1])
    depth_paths.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(np.zeros((4, 10), np.uint16)).save(depth_paths[-1])
  with caplog.at_level(logging.WARNING):
    result = frames.assemble_frames(pose_paths, color_paths, depth_paths,
                                    np.diag([4.0, 4.0, 1.0]), None, source=str(tmp_path))
  assert len(result) == 2 and result.depth_paths == [depth_paths[0], depth_paths[2]]
  np.testing.assert_array_equal(result.poses, np.stack([poses[0], poses[2]]))
  np.testing.assert_allclose(result.depth_intrinsics, np.diag([2.0, 2.0, 1.0]))
  assert result.color_size == (20, 8) and result.depth_size == (10, 4)
  assert any("1.txt" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  with pytest.raises(InputError, match="no posed frames"):
    frames.assemble_frames([], [], [], np.eye(3), None, source=str(tmp_path))
