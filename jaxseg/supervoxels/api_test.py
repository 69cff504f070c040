"""compute_supervoxels dispatch, errors, and the oracle on one real ScanNet mini scan."""

import numpy as np
import pytest

from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.io.votenet import read_votenet_scene
from jaxseg.supervoxels.api import compute_supervoxels
from jaxseg.supervoxels.mesh_segmentation import segment_mesh
from jaxseg.supervoxels.oracle import oracle_scores
from jaxseg.supervoxels.pointcloud import pointcloud_supervoxels
from jaxseg.testing import require_scannet_mini


def _plane_mesh(n=30):
  i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  rng = np.random.default_rng(0)
  coords = np.stack([i.reshape(-1) * 0.05, j.reshape(-1) * 0.05,
                     0.01 * rng.normal(size=n * n)], axis=1).astype(np.float32)
  faces = []
  for a in range(n - 1):
    for b in range(n - 1):
      p, q, r, s = a * n + b, (a + 1) * n + b, a * n + b + 1, (a + 1) * n + b + 1
      faces += [(p, q, s), (p, s, r)]
  return Scene(name="plane", coords=coords, colors=np.full((n * n, 3), 100, np.uint8),
               faces=np.array(faces, np.int32), source="plane.ply")


def test_auto_uses_mesh_when_faces_present():
  scene = _plane_mesh()
  expected = segment_mesh(scene.coords, scene.faces, kthresh=0.02)
  np.testing.assert_array_equal(compute_supervoxels(scene, kthresh=0.02), expected)
  np.testing.assert_array_equal(compute_supervoxels(scene, method="mesh", kthresh=0.02),
                                expected)


def test_auto_uses_vccs_without_faces():
  scene = _plane_mesh()
  scene.faces = None
  expected = pointcloud_supervoxels(scene.coords, scene.colors, smoothness_deg=3.0)
  np.testing.assert_array_equal(compute_supervoxels(scene, smoothness_deg=3.0), expected)


def test_bad_requests_name_the_source():
  scene = _plane_mesh()
  with pytest.raises(InputError, match="plane.ply.*unknown super-voxel method"):
    compute_supervoxels(scene, method="slic")
  with pytest.raises(InputError, match="unknown mesh segmentation parameters"):
    compute_supervoxels(scene, smoothness_deg=3.0)
  with pytest.raises(InputError, match="unknown point-cloud super-voxel parameters"):
    compute_supervoxels(scene, method="vccs", kthresh=0.01)
  scene.faces = None
  with pytest.raises(InputError, match="no mesh faces"):
    compute_supervoxels(scene, method="mesh")


def test_real_scan_oracle():
  root = require_scannet_mini()
  scene = read_votenet_scene(root + "/labeled", "scene0000_00")
  segments = compute_supervoxels(scene, smoothness_deg=5.0)
  result = oracle_scores(segments, scene.labels, num_classes=20)
  assert segments.shape == (scene.num_points,) and segments.dtype == np.int32
  assert result["coverage"] == 1.0
  # 0.5 m seeds on a ~9 x 9 m room scan: some hundreds of super-voxels.
  assert 100 <= result["num_segments"] <= 3000
  assert result["miou"] > 0.6
  assert result["oacc"] > 0.8
