"""End-to-end checks of the generated ScanNet-format files, read back WITHOUT our readers."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import spatial

from jaxseg import testing
from jaxseg.synthetic import generate
from jaxseg.synthetic.mesh import MeshConfig

CONFIG = generate.SyntheticConfig(num_train=1, num_val=1, frames_per_scene=3,
                                  color_size=(160, 120), depth_size=(160, 120),
                                  mesh=MeshConfig(spacing=0.06))
SEED = 3
FURNITURE_NYU40 = {3, 4, 5, 6, 7, 10, 12, 14, 24, 33, 34}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("synthetic"))
  generate.generate_dataset(out, CONFIG, seed=SEED)
  return out


def _scenes(root):
  return [line.strip() for split in ("train", "val")
          for line in open(os.path.join(root, f"scannetv2_{split}.txt"))]


def _read_scannet_ply(path, with_label):
  """Independent binary PLY parser for ScanNet's exact layout; checks the header verbatim."""
  with open(path, "rb") as f:
    data = f.read()
  end = data.index(b"end_header\n") + len(b"end_header\n")
  header = data[:end].decode("ascii").splitlines()
  n_vert = int(header[2].split()[2])
  n_face = int(header[-3].split()[2])
  expected = (["ply", "format binary_little_endian 1.0", f"element vertex {n_vert}"] +
              [f"property float {c}" for c in "xyz"] +
              [f"property uchar {c}" for c in ("red", "green", "blue", "alpha")] +
              (["property ushort label"] if with_label else []) +
              [f"element face {n_face}", "property list uchar int vertex_indices",
               "end_header"])
  assert header == expected
  fields = [(c, "<f4") for c in "xyz"] + [(c, "u1") for c in ("red", "green", "blue", "alpha")]
  vdt = np.dtype(fields + ([("label", "<u2")] if with_label else []))
  fdt = np.dtype([("n", "u1"), ("v", "<i4", (3,))])
  assert len(data) == end + n_vert * vdt.itemsize + n_face * fdt.itemsize
  verts = np.frombuffer(data, vdt, n_vert, end)
  faces = np.frombuffer(data, fdt, n_face, end + n_vert * vdt.itemsize)
  assert (faces["n"] == 3).all()
  return verts, faces["v"]


def _matrix(path):
  return np.loadtxt(path, dtype=np.float64).reshape(4, 4)


def _axis_alignment(root, scene):
  for line in open(os.path.join(root, scene, f"{scene}.txt")):
    key, _, value = line.partition("=")
    if key.strip() == "axisAlignment":
      return np.array(value.split(), np.float64).reshape(4, 4)
  raise AssertionError("no axisAlignment line")


def test_split_files_and_scene_ids(root):
  assert _scenes(root) == ["scene9000_00", "scene9001_00"]


def test_ply_files_parse_independently(root):
  for scene in _scenes(root):
    stem = os.path.join(root, scene, f"{scene}_vh_clean_2")
    verts, faces = _read_scannet_ply(stem + ".ply", with_label=False)
    lverts, lfaces = _read_scannet_ply(stem + ".labels.ply", with_label=True)
    assert 5000 < len(verts) < 200000
    assert faces.min() >= 0 and faces.max() < len(verts)
    np.testing.assert_array_equal(faces, lfaces)
    for c in ("x", "y", "z", "red", "green", "blue"):
      np.testing.assert_array_equal(verts[c], lverts[c])
    # Every vertex belongs to a face, as in a cleaned ScanNet mesh.
    assert len(np.unique(faces)) == len(verts)


def test_labels_are_nyu40_with_structure_and_furniture(root):
  seen = set()
  for scene in _scenes(root):
    verts, _ = _read_scannet_ply(os.path.join(root, scene, f"{scene}_vh_clean_2.labels.ply"),
                                 with_label=True)
    labels = set(np.unique(verts["label"]).tolist())
    assert labels <= set(range(1, 41))
    assert {1, 2} <= labels
    seen |= labels
  assert len(seen & FURNITURE_NYU40) >= 4


def test_segments_and_aggregation_are_consistent(root):
  label_map = {row["raw_category"]: int(row["nyu40id"]) for row in csv.DictReader(
      open(os.path.join(root, "scannetv2-labels.combined.tsv")), delimiter="\t")}
  mini = testing.scannet_mini_root()
  official = None
  if mini is not None:
    official = {row["raw_category"]: int(row["nyu40id"]) for row in csv.DictReader(
        open(os.path.join(mini, "meta", "scannetv2-labels.combined.tsv")), delimiter="\t")
                if row["nyu40id"]}
  for scene in _scenes(root):
    base = os.path.join(root, scene, scene)
    verts, _ = _read_scannet_ply(base + "_vh_clean_2.labels.ply", with_label=True)
    segs = json.load(open(base + "_vh_clean_2.0.010000.segs.json"))
    agg = json.load(open(base + ".aggregation.json"))
    seg_indices = np.asarray(segs["segIndices"])
    assert segs["sceneId"] == scene and segs["params"]["segMinVerts"] == "20"
    assert len(seg_indices) == len(verts)
    assert agg["sceneId"] == f"scannet.{scene}"
    assert agg["segmentsFile"] == f"scannet.{scene}_vh_clean_2.0.010000.segs.json"
    owner = {}
    for group in agg["segGroups"]:
      assert group["id"] == group["objectId"]
      for seg in group["segments"]:
        assert seg not in owner, "a segment belongs to two objects"
        owner[seg] = group
    assert set(owner) == set(seg_indices.tolist())
    # Each group's raw category maps (via the tsv) to the NYU40 label of all its vertices.
    for group in agg["segGroups"]:
      members = np.isin(seg_indices, group["segments"])
      assert members.any()
      assert set(verts["label"][members].tolist()) == {label_map[group["label"]]}
      if official is not None:
        assert official[group["label"]] == label_map[group["label"]]
    # Segments are patches: many of them, none larger than a wall-sized region.
    sizes = np.unique(seg_indices, return_counts=True)[1]
    assert len(sizes) > 50
    xyz = np.stack([verts[c] for c in "xyz"], -1)
    for seg in np.unique(seg_indices)[:200]:
      pts = xyz[seg_indices == seg]
      assert np.linalg.norm(pts.max(0) - pts.min(0)) < 1.2


def test_axis_alignment_levels_floor_and_walls(root):
  for scene in _scenes(root):
    verts, _ = _read_scannet_ply(os.path.join(root, scene, f"{scene}_vh_clean_2.labels.ply"),
                                 with_label=True)
    align = _axis_alignment(root, scene)
    np.testing.assert_allclose(align[:3, :3] @ align[:3, :3].T, np.eye(3), atol=1e-5)
    raw = np.stack([verts[c] for c in "xyz"], -1).astype(np.float64)
    xyz = raw @ align[:3, :3].T + align[:3, 3]
    floor = xyz[verts["label"] == 2]
    assert abs(np.median(floor[:, 2])) < 0.01 and floor[:, 2].std() < 0.01
    # The floor's normal (least principal axis) is z.
    _, _, vt = np.linalg.svd(floor - floor.mean(0), full_matrices=False)
    assert abs(vt[2, 2]) > 0.999
    # Wall vertices lie on the four planes of the axis-aligned bounding box of the walls.
    wall = xyz[verts["label"] == 1]
    lo, hi = np.percentile(wall[:, :2], 0.5, axis=0), np.percentile(wall[:, :2], 99.5, axis=0)
    dist = np.minimum(np.abs(wall[:, :2] - lo), np.abs(wall[:, :2] - hi)).min(1)
    assert (dist < 0.03).mean() > 0.98


def _surface_samples(xyz, colors, faces, per_face=12, seed=0):
  """Random points on the mesh triangles with barycentrically interpolated colours."""
  rng = np.random.default_rng(seed)
  w = rng.dirichlet(np.ones(3), size=(len(faces), per_face))
  pts = np.einsum("fsk,fkc->fsc", w, xyz[faces]).reshape(-1, 3)
  cols = np.einsum("fsk,fkc->fsc", w, colors[faces]).reshape(-1, 3)
  return pts, cols


def test_depth_and_color_match_the_mesh(root):
  for scene in _scenes(root):
    scene_dir = os.path.join(root, scene)
    verts, faces = _read_scannet_ply(os.path.join(scene_dir, f"{scene}_vh_clean_2.ply"),
                                     with_label=False)
    xyz = np.stack([verts[c] for c in "xyz"], -1).astype(np.float64)
    rgb = np.stack([verts[c] for c in ("red", "green", "blue")], -1).astype(np.float64)
    pts, cols = _surface_samples(xyz, rgb, faces)
    tree = spatial.cKDTree(pts)
    k_depth = _matrix(os.path.join(scene_dir, "intrinsic", "intrinsic_depth.txt"))
    np.testing.assert_array_equal(_matrix(os.path.join(scene_dir, "intrinsic",
                                                       "extrinsic_depth.txt")), np.eye(4))
    for i in range(CONFIG.frames_per_scene):
      depth_img = Image.open(os.path.join(scene_dir, "depth", f"{i}.png"))
      assert depth_img.mode in ("I;16", "I")
      depth = np.asarray(depth_img).astype(np.float64) / 1000.0
      color = np.asarray(Image.open(os.path.join(scene_dir, "color", f"{i}.jpg")),
                         np.float64)
      assert depth.shape == (120, 160) and color.shape == (120, 160, 3)
      pose = _matrix(os.path.join(scene_dir, "pose", f"{i}.txt"))
      np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
      rows, cols_ = np.nonzero(depth > 0)
      assert len(rows) > 0.5 * depth.size
      z = depth[rows, cols_]
      cam = np.stack([(cols_ - k_depth[0, 2]) * z / k_depth[0, 0],
                      (rows - k_depth[1, 2]) * z / k_depth[1, 1], z], -1)
      world = cam @ pose[:3, :3].T + pose[:3, 3]
      dist, nearest = tree.query(world)
      assert (dist < 0.02).mean() > 0.95, (scene, i, np.percentile(dist, [50, 90, 99]))
      assert np.median(dist) < 0.006
      # Colour at the pixel is the colour of the surface there, far closer than chance.
      good = dist < 0.01
      err = np.abs(color[rows, cols_][good] - cols[nearest[good]]).mean(1)
      chance = np.abs(color[rows, cols_][good] -
                      cols[np.random.default_rng(i).permutation(nearest[good])]).mean(1)
      assert np.median(err) < 12 and np.median(err) < 0.3 * np.median(chance), (
          np.median(err), np.median(chance))


def test_depth_and_color_at_different_resolutions(tmp_path):
  config = generate.SyntheticConfig(num_train=1, num_val=0, frames_per_scene=1,
                                    color_size=(200, 150), depth_size=(80, 60),
                                    mesh=MeshConfig(spacing=0.08))
  scene = "scene9000_00"
  generate.generate_scene(str(tmp_path), scene, 3, 0, config)
  scene_dir = tmp_path / scene
  verts, faces = _read_scannet_ply(str(scene_dir / f"{scene}_vh_clean_2.ply"), with_label=False)
  xyz = np.stack([verts[c] for c in "xyz"], -1).astype(np.float64)
  rgb = np.stack([verts[c] for c in ("red", "green", "blue")], -1).astype(np.float64)
  pts, surface_rgb = _surface_samples(xyz, rgb, faces, per_face=20)
  depth = np.asarray(Image.open(scene_dir / "depth" / "0.png")).astype(np.float64) / 1000
  color = np.asarray(Image.open(scene_dir / "color" / "0.jpg"), np.float64)
  assert depth.shape == (60, 80) and color.shape == (150, 200, 3)
  k_depth = _matrix(scene_dir / "intrinsic" / "intrinsic_depth.txt")
  k_color = _matrix(scene_dir / "intrinsic" / "intrinsic_color.txt")
  pose = _matrix(scene_dir / "pose" / "0.txt")
  rows, cols = np.nonzero(depth > 0)
  z = depth[rows, cols]
  cam = np.stack([(cols - k_depth[0, 2]) * z / k_depth[0, 0],
                  (rows - k_depth[1, 2]) * z / k_depth[1, 1], z], -1)
  world = cam @ pose[:3, :3].T + pose[:3, 3]
  dist, nearest = spatial.cKDTree(pts).query(world)
  assert (dist < 0.02).mean() > 0.95
  # The same surface points seen through the colour intrinsics show the surface colour.
  good = dist < 0.01
  u = np.round(cam[good, 0] / cam[good, 2] * k_color[0, 0] + k_color[0, 2]).astype(int)
  v = np.round(cam[good, 1] / cam[good, 2] * k_color[1, 1] + k_color[1, 2]).astype(int)
  inside = (u >= 0) & (u < 200) & (v >= 0) & (v < 150)
  err = np.abs(color[v[inside], u[inside]] - surface_rgb[nearest[good][inside]]).mean(1)
  assert inside.mean() > 0.95 and np.median(err) < 15, np.median(err)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(root, tmp_path):
  scene = "scene9000_00"
  generate.generate_scene(str(tmp_path / "a"), scene, 0, SEED, CONFIG)
  generate.generate_scene(str(tmp_path / "b"), scene, 0, SEED + 1, CONFIG)
  ref_dir = os.path.join(root, scene)
  names = sorted(os.path.relpath(os.path.join(d, f), ref_dir)
                 for d, _, fs in os.walk(ref_dir) for f in fs)
  assert len(names) == 5 + 4 + 3 * CONFIG.frames_per_scene
  for name in names:
    with open(os.path.join(ref_dir, name), "rb") as f:
      ref = f.read()
    with open(tmp_path / "a" / scene / name, "rb") as f:
      assert f.read() == ref, name
  with open(tmp_path / "b" / scene / f"{scene}_vh_clean_2.ply", "rb") as f:
    assert f.read() != open(os.path.join(ref_dir, f"{scene}_vh_clean_2.ply"), "rb").read()
