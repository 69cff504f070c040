"""Tests for jaxseg.io.mmdet3d: real posed frames of the mini set and layouts written here."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree

from jaxseg import testing
from jaxseg.errors import InputError
from jaxseg.io import mmdet3d


def _mini():
  return testing.require_scannet_mini()


def test_mini_points_and_posed_frames():
  root = _mini()
  assert mmdet3d.list_mmdet3d_scenes(root, "train") == [
      "scene0000_00", "scene0113_00", "scene0448_01"]
  scene = mmdet3d.read_mmdet3d_scene(root, "scene0000_00")
  raw = np.fromfile(os.path.join(root, "points", "scene0000_00.bin"), np.float32).reshape(-1, 6)
  assert scene.num_points == 81369
  np.testing.assert_array_equal(scene.coords, raw[:, :3])
  np.testing.assert_array_equal(scene.colors, raw[:, 3:6].astype(np.uint8))
  frames = scene.frames
  assert len(frames) == 60
  assert frames.color_size == (1296, 968) and frames.depth_size == (640, 480)
  color_k = np.loadtxt(os.path.join(root, "posed", "scene0000_00", "intrinsic.txt"))[:3, :3]
  expected_depth_k = color_k * np.array([[640 / 1296], [480 / 968], [1.0]])
  np.testing.assert_allclose(frames.depth_intrinsics, expected_depth_k, rtol=1e-6)
  np.testing.assert_allclose(frames.poses[1], np.loadtxt(frames.depth_paths[1][:-4] + ".txt"),
                             rtol=1e-6)


def _depth_metres(path):
  return np.asarray(Image.open(path)).astype(np.float64) / 1000.0


def test_mini_frames_are_geometrically_consistent():
  """Depth pixels back-projected with the depth intrinsics and pose land on the cloud, and
  cloud points projected into the depth image meet matching depth (a wrongly scaled intrinsic
  matrix fails both: measured ~10% instead of ~90%)."""
  scene = mmdet3d.read_mmdet3d_scene(_mini(), "scene0000_00")
  frames = scene.frames
  k = frames.depth_intrinsics.astype(np.float64)
  tree = cKDTree(scene.coords)
  near_fractions, match_fractions = [], []
  for v in range(0, len(frames), 12):
    depth = _depth_metres(frames.depth_paths[v])
    pose = frames.poses[v].astype(np.float64)
    rows, cols = np.mgrid[0:480:8, 0:640:8]
    z = depth[rows, cols]
    ok = z > 0
    camera = np.stack([(cols[ok] + 0.5 - k[0, 2]) * z[ok] / k[0, 0],
                       (rows[ok] + 0.5 - k[1, 2]) * z[ok] / k[1, 1], z[ok]], axis=1)
    distance, _ = tree.query(camera @ pose[:3, :3].T + pose[:3, 3])
    near_fractions.append(np.mean(distance < 0.05))
    world_to_camera = np.linalg.inv(pose)
    p = scene.coords.astype(np.float64) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    front = p[:, 2] > 0.1
    u = np.floor(k[0, 0] * p[front, 0] / p[front, 2] + k[0, 2]).astype(int)
    w = np.floor(k[1, 1] * p[front, 1] / p[front, 2] + k[1, 2]).astype(int)
    inside = (u >= 0) & (u < 640) & (w >= 0) & (w < 480)
    seen = depth[w[inside], u[inside]]
    valid = seen > 0
    assert valid.sum() > 1000  # a good number of points land inside the depth image
    match_fractions.append(np.mean(np.abs(seen[valid] - p[front][inside][valid, 2]) < 0.05))
  assert min(near_fractions) > 0.7 and np.mean(near_fractions) > 0.85
  assert np.mean(match_fractions) > 0.25  # occlusion lowers it; wrong intrinsics give < 0.1


def test_mini_labelled_subset_is_aligned_raw_points():
  root = _mini()
  infos = mmdet3d.load_infos(os.path.join(root, "meta", "scannet_infos_train.pkl"))
  alignment = np.asarray(infos["scene0000_00"]["axis_align_matrix"], np.float64)
  scene = mmdet3d.read_mmdet3d_scene(root, "scene0000_00", with_frames=False)
  np.testing.assert_allclose(scene.axis_alignment, alignment, rtol=1e-6)
  aligned = scene.coords.astype(np.float64) @ alignment[:3, :3].T + alignment[:3, 3]
  vert = np.load(os.path.join(root, "labeled", "scene0000_00_vert.npy"))
  distance, index = cKDTree(aligned).query(vert[:, :3].astype(np.float64))
  assert distance.max() < 1e-5
  np.testing.assert_array_equal(scene.colors[index], vert[:, 3:6].astype(np.uint8))
  # 50,000 labelled of 81,369 vertices: the README's "labels on 61% of its vertices".
  assert len(np.unique(index)) == 50000
  assert abs(50000 / scene.num_points - 0.61) < 0.01


def test_old_style_infos_pickle():
  infos = mmdet3d.load_infos(os.path.join(_mini(), "meta", "mmdet3d_scene0000_00_mv_infos.pkl"))
  train = mmdet3d.load_infos(os.path.join(_mini(), "meta", "scannet_infos_train.pkl"))
  np.testing.assert_allclose(infos["scene0000_00"]["annos"]["axis_align_matrix"],
                             train["scene0000_00"]["axis_align_matrix"], rtol=1e-6)


class _Evil:

  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
  path = tmp_path / "scannet_infos_train.pkl"
  with open(path, "wb") as f:
    pickle.dump([{"point_cloud": {"lidar_idx": "scene0000_00"}, "x": _Evil()}], f)
  with pytest.raises(InputError, match="not allowed"):
    mmdet3d.load_infos(str(path))
  with open(path, "wb") as f:
    pickle.dump({"data_list": [{"lidar_points": {"lidar_path": "s0.bin"},
                                "axis_align_matrix": np.eye(4) * 2}]}, f)
  assert mmdet3d.load_infos(str(path))["s0"]["axis_align_matrix"][0, 0] == 2


def _layout(root, n=30, frames=2, seed=0):
  """Writes points/, semantic_mask/, instance_mask/ and posed_images/ for scene 's0'."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "points"))
  points = np.concatenate([rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3))], 1)
  points.astype(np.float32).tofile(os.path.join(root, "points", "s0.bin"))
  for folder, values in (("semantic_mask", rng.choice([0, 1, 5, 40], n)),
                         ("instance_mask", rng.integers(0, 4, n)),
                         ("super_points", rng.choice([9, 20, 31], n))):
    os.makedirs(os.path.join(root, folder))
    values.astype(np.int64).tofile(os.path.join(root, folder, "s0.bin"))
  posed = os.path.join(root, "posed_images", "s0")
  os.makedirs(posed)
  np.savetxt(os.path.join(posed, "intrinsic.txt"), np.diag([100.0, 90.0, 1.0, 1.0]))
  for i in range(frames):
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(os.path.join(posed, f"{i:05d}.jpg"))
    Image.fromarray(np.zeros((10, 10), np.uint16)).save(os.path.join(posed, f"{i:05d}.png"))
    np.savetxt(os.path.join(posed, f"{i:05d}.txt"), np.eye(4))
  return points


def test_layout_with_masks(tmp_path):
  points = _layout(tmp_path)
  scene = mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")
  np.testing.assert_allclose(scene.coords, points[:, :3], rtol=1e-6)
  nyu40 = np.fromfile(tmp_path / "semantic_mask" / "s0.bin", np.int64)
  np.testing.assert_array_equal(scene.labels, np.select([nyu40 == 1, nyu40 == 5], [0, 4], -1))
  np.testing.assert_array_equal(scene.instances,
                                np.fromfile(tmp_path / "instance_mask" / "s0.bin", np.int64))
  raw = np.fromfile(tmp_path / "super_points" / "s0.bin", np.int64)
  np.testing.assert_array_equal(scene.segments, np.searchsorted([9, 20, 31], raw))
  # Depth intrinsics scaled from 40x20 colour to 10x10 depth.
  np.testing.assert_allclose(scene.frames.depth_intrinsics, np.diag([25.0, 45.0, 1.0]))
  assert scene.axis_alignment is None


def test_bad_layouts(tmp_path):
  _layout(tmp_path)
  np.zeros(29, np.int64).tofile(tmp_path / "semantic_mask" / "s0.bin")
  with pytest.raises(InputError, match="29 values") as e:
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")
  assert "semantic_mask" in str(e.value)
  os.remove(tmp_path / "semantic_mask" / "s0.bin")
  bin_path = tmp_path / "points" / "s0.bin"
  bin_path.write_bytes(bin_path.read_bytes()[:-4])
  with pytest.raises(InputError, match="truncated") as e:
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")
  assert str(bin_path) in str(e.value)
  np.zeros((30, 6), np.float32).tofile(bin_path)
  os.remove(tmp_path / "posed_images" / "s0" / "00001.jpg")
  with pytest.raises(InputError, match="colour image"):
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")
  os.remove(tmp_path / "posed_images" / "s0" / "intrinsic.txt")
  with pytest.raises(InputError, match="intrinsic.txt"):
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")
  assert mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0", with_frames=False).frames is None
  os.rename(tmp_path / "posed_images", tmp_path / "elsewhere")
  with pytest.raises(InputError, match="posed images not found"):
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0")


def test_fractional_colours_and_bad_labels(tmp_path):
  """Every reader rescales 0..1 colours (reliability report, defect 1) and checks NYU40 ids
  (defect 8)."""
  points = _layout(tmp_path)
  rgb = points[:, 3:6].astype(np.uint8)
  np.c_[points[:, :3], rgb / 255.0].astype(np.float32).tofile(tmp_path / "points" / "s0.bin")
  scene = mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0", with_frames=False)
  np.testing.assert_array_equal(scene.colors, rgb)
  np.full(len(points), 300, np.int64).tofile(tmp_path / "semantic_mask" / "s0.bin")
  with pytest.raises(InputError, match="outside NYU40") as e:
    mmdet3d.read_mmdet3d_scene(str(tmp_path), "s0", with_frames=False)
  assert e.value.path.endswith(os.path.join("semantic_mask", "s0.bin"))
