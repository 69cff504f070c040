"""jaxseg.methods.pointdc.targets: round trip against direct computation, resume, batching, mismatches."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from jaxseg.methods.pointdc import point_features, targets
from jaxseg.errors import InputError
from jaxseg.teachers.teacher import Teacher

SETTINGS = {"image_size": (24, 18), "views_per_batch": 2, "use_depth": False,
            "occlusion_tolerance": 0.1, "zbuffer_stride": 2}


def _teacher(scale=1.0):
  return Teacher(name=f"rgb_x{scale:g}", dim=3, patch_size=1, params={},
                 grid_fn=lambda p, im: im * scale)


def _frames(directory, rng, num_views=3):
  """Noise PNG frames (48x36) looking at the origin, as a record's frames dict."""
  paths, poses = [], []
  for v in range(num_views):
    path = os.path.join(directory, f"{v}.png")
    Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(path)
    paths.append(path.encode())
    angle = 2 * np.pi * v / num_views
    eye = np.array([3 * np.cos(angle), 3 * np.sin(angle), 0.5])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = (right, np.cross(forward, right),
                                                          forward, eye)
    poses.append(pose)
  k = np.array([[40.0, 0, 23.5], [0, 40.0, 17.5], [0, 0, 1]], np.float32)
  return {"poses": np.stack(poses).astype(np.float32), "color_paths": paths,
          "depth_paths": [b""] * num_views, "color_intrinsics": k, "depth_intrinsics": k,
          "color_size": np.array([48, 36], np.int32), "depth_size": np.zeros(2, np.int32),
          "depth_scale": np.float32(1000)}


def _no_frames():
  return {"poses": np.zeros((0, 4, 4), np.float32), "color_paths": [], "depth_paths": [],
          "color_intrinsics": np.zeros((3, 3), np.float32),
          "depth_intrinsics": np.zeros((3, 3), np.float32), "color_size": np.zeros(2, np.int32),
          "depth_size": np.zeros(2, np.int32), "depth_scale": np.float32(0)}


def _record(directory, index, with_frames=True):
  rng = np.random.default_rng(index)
  n, s = 200 + 50 * index, 10 + 3 * index
  scene_dir = os.path.join(directory, f"scene{index}")
  os.makedirs(scene_dir, exist_ok=True)
  return {"name": f"scene{index:04d}_00".encode(),
          "coords": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
          "segments": rng.integers(-1, s, n).astype(np.int32), "num_segments": np.int32(s),
          "frames": _frames(scene_dir, rng) if with_frames else _no_frames()}


@pytest.fixture()
def source(tmp_path):
  """Four records; record 2 has no frames."""
  return [_record(str(tmp_path / "frames"), i, with_frames=i != 2) for i in range(4)]


class _Interrupted(Exception):
  pass


class _FailingSource:
  """A source whose record `fail_at` raises (an interrupted build)."""

  def __init__(self, records, fail_at):
    self.records, self.fail_at = records, fail_at

  def __len__(self):
    return len(self.records)

  def __getitem__(self, index):
    if index == self.fail_at:
      raise _Interrupted()
    return self.records[index]


@pytest.fixture()
def calls(monkeypatch):
  """Counts teacher_point_features calls made by build_targets."""
  counted = []
  original = targets.teacher_point_features

  def counting(*args, **kwargs):
    counted.append(1)
    return original(*args, **kwargs)
  monkeypatch.setattr(targets, "teacher_point_features", counting)
  return counted


def _direct(record, teacher):
  feats, seen = point_features.teacher_point_features(teacher, record["frames"],
                                                      record["coords"], **SETTINGS)
  return point_features.supervoxel_targets(feats, seen, record["segments"],
                                           int(record["num_segments"]))


def test_round_trip_matches_direct_computation(tmp_path, source, caplog, calls):
  teacher = _teacher()
  with caplog.at_level(logging.INFO, logger="jaxseg.methods.pointdc.targets"):
    store = targets.build_targets(source, teacher, SETTINGS, str(tmp_path / "cache"))
  assert len(calls) == 3  # the scene without frames needs no teacher
  assert (store.dim, store.num_scenes, store.teacher_name) == (3, 4, teacher.name)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert warnings == ["1 of 4 scenes have no frames; they get no distillation targets"]
  assert any("points seen by at least one view" in r.getMessage() for r in caplog.records)
  for index, record in enumerate(source):
    loaded, has_target = store.load(index)
    assert loaded.dtype == np.float32 and loaded.shape == (record["num_segments"], 3)
    if index == 2:
      assert not has_target.any() and not loaded.any()
      continue
    expected, expected_has = _direct(record, teacher)
    np.testing.assert_array_equal(has_target, expected_has)
    assert 0 < has_target.sum() < len(has_target) or has_target.all()
    # Stored as float16: at most 1e-3 relative error per super-voxel.
    error = np.linalg.norm(loaded - expected, axis=1)
    assert (error <= 1e-3 * np.linalg.norm(expected, axis=1) + 1e-12).all()
    with np.load(os.path.join(store.cache_dir, f"{index:06d}.npz")) as data:
      assert data["targets"].dtype == np.float16
      assert str(data["name"]) == record["name"].decode()
  # A second build reuses everything.
  targets.build_targets(source, teacher, SETTINGS, str(tmp_path / "cache"))
  assert len(calls) == 3


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_targets_beyond_float16_are_stored_as_float32(tmp_path, source, scale):
  teacher = _teacher(scale)  # overflows float16, or falls to its imprecise subnormals
  store = targets.build_targets(source[:2], teacher, SETTINGS, str(tmp_path / "cache"))
  expected, _ = _direct(source[0], teacher)
  assert np.abs(expected).max() > 65504 or np.abs(expected).max() < 6.1e-5
  np.testing.assert_array_equal(store.load(0)[0], expected)


def test_interrupted_build_resumes_without_recomputing(tmp_path, source, calls):
  teacher = _teacher()
  cache = str(tmp_path / "cache")
  with pytest.raises(_Interrupted):
    targets.build_targets(_FailingSource(source, fail_at=3), teacher, SETTINGS, cache)
  assert len(calls) == 2  # records 0 and 1 (2 has no frames)
  assert sorted(os.listdir(cache)) == ["000000.npz", "000001.npz", "000002.npz"]
  with pytest.raises(InputError, match="manifest"):
    targets.TargetStore(cache)
  store = targets.build_targets(source, teacher, SETTINGS, cache)
  assert len(calls) == 3  # only record 3 was computed
  fresh = targets.build_targets(source, teacher, SETTINGS, str(tmp_path / "fresh"))
  for index in range(len(source)):
    for a, b in zip(store.load(index), fresh.load(index)):
      np.testing.assert_array_equal(a, b)


def test_store_gives_each_scene_its_targets_as_pipeline_extras(tmp_path, source):
  store = targets.build_targets(source, _teacher(), SETTINGS, str(tmp_path / "cache"))
  for index in range(len(source)):
    extras = store(index)
    loaded, has_target = store.load(index)
    assert set(extras) == {"segment_targets", "segment_has_target"}
    assert extras["segment_targets"].shape == (int(source[index]["num_segments"]), 3)
    np.testing.assert_array_equal(extras["segment_targets"], loaded)
    np.testing.assert_array_equal(extras["segment_has_target"], has_target)


def test_no_scene_with_frames_is_an_error(tmp_path):
  records = [_record(str(tmp_path), i, with_frames=False) for i in range(2)]
  with pytest.raises(InputError, match="data.with_frames") as e:
    targets.build_targets(records, _teacher(), SETTINGS, str(tmp_path / "cache"))
  assert "data.frames_root" in str(e.value) and "none of the 2 scene(s)" in str(e.value)


def test_mismatched_caches_are_refused(tmp_path, source):
  cache = str(tmp_path / "cache")
  teacher = _teacher()
  targets.build_targets(source, teacher, SETTINGS, cache)
  other = {**SETTINGS, "zbuffer_stride": 3}
  with pytest.raises(InputError, match="settings"):
    targets.build_targets(source, teacher, other, cache)
  with pytest.raises(InputError, match="teacher"):
    targets.build_targets(source, _teacher(2.0), SETTINGS, cache)
  with pytest.raises(InputError, match="teacher 'rgb_x1'"):
    targets.TargetStore(cache, teacher_name="dino_vits8")
  assert targets.TargetStore(cache, teacher_name="rgb_x1", settings=SETTINGS).num_scenes == 4
  with pytest.raises(InputError, match="unknown distillation setting"):
    targets.build_targets(source, teacher, {"image_sise": (24, 18)}, cache)
  # A partial cache built with other settings, or for other scenes, is not resumed.
  partial = str(tmp_path / "partial")
  with pytest.raises(_Interrupted):
    targets.build_targets(_FailingSource(source, fail_at=2), teacher, SETTINGS, partial)
  with pytest.raises(InputError, match="another teacher or other settings"):
    targets.build_targets(source, teacher, other, partial)
  renamed = [dict(r, name=b"sceneXXXX_00") for r in source]
  with pytest.raises(InputError, match="keep one targets cache per prepared dataset"):
    targets.build_targets(renamed, teacher, SETTINGS, partial)


def test_projected_targets_are_the_pca_of_the_stored_targets(tmp_path, source):
  """cmd.target_dim: the projection keeps the top principal directions of every stored target
  row (checked against scikit-learn's PCA), and rows without a target stay zero."""
  sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
  store = targets.build_targets(source, _teacher(), SETTINGS, str(tmp_path / "cache"))
  projected = targets.ProjectedTargets(store, 2)
  rows = np.concatenate([t[h] for t, h in (store.load(i) for i in range(store.num_scenes))])
  pca = sklearn_decomposition.PCA(n_components=2).fit(rows.astype(np.float64))
  assert projected.explained == pytest.approx(pca.explained_variance_ratio_.sum(), rel=1e-4)
  for index in range(store.num_scenes):
    raw, has = store.load(index)
    got = projected(index)
    assert got["segment_targets"].shape == (raw.shape[0], 2)
    np.testing.assert_array_equal(got["segment_has_target"], has)
    assert not got["segment_targets"][~has].any()
    if not has.any():          # the scene without frames
      continue
    want = pca.transform(raw[has].astype(np.float64))
    # Principal directions are defined up to sign.
    signs = np.sign(np.sum(want * got["segment_targets"][has], axis=0))
    np.testing.assert_allclose(got["segment_targets"][has], want * signs, atol=1e-4)
