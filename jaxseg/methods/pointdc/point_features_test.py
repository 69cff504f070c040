"""jaxseg.methods.pointdc.point_features against float64 numpy references, rendered rooms and real frames."""

import os

import numpy as np
import pytest
from PIL import Image

from jaxseg import testing
from jaxseg.methods.pointdc import point_features
from jaxseg.errors import InputError
from jaxseg.io import mmdet3d, scannet
from jaxseg.synthetic import generate
from jaxseg.synthetic.mesh import MeshConfig
from jaxseg.teachers.teacher import Teacher

RGB_TEACHER = Teacher(name="rgb", dim=3, patch_size=1, params={}, grid_fn=lambda p, im: im)


def _pooling_teacher(patch):
  """1 - the mean of patch x patch blocks (the remainder dropped, like a ViT); inverted so
  that a blank padded view would win the max over views if it were not masked."""

  def grid_fn(params, images):
    del params
    b, h, w, c = images.shape
    gh, gw = h // patch, w // patch
    blocks = images[:, :gh * patch, :gw * patch].reshape(b, gh, patch, gw, patch, c)
    return 1.0 - blocks.mean(axis=(2, 4))
  return Teacher(name=f"pool{patch}", dim=3, patch_size=patch, params={}, grid_fn=grid_fn)


def test_supervoxel_targets_match_float64_loop():
  rng = np.random.default_rng(0)
  n, d, s = 500, 7, 12
  feats = rng.normal(size=(n, d)).astype(np.float32)
  seen = rng.random(n) < 0.6
  segments = rng.integers(-1, s + 2, n)  # -1 and ids >= S belong to no super-voxel
  segments[segments == 4] = 5            # segment 4 has no point
  segments[(segments == 7) & seen] = -1  # segment 7 has points, none seen
  targets, has_target = point_features.supervoxel_targets(feats, seen, segments, s)
  assert targets.dtype == np.float32 and has_target.dtype == bool
  for k in range(s):
    members = [j for j in range(n) if segments[j] == k and seen[j]]
    assert has_target[k] == bool(members)
    expected = (np.mean(feats[members].astype(np.float64), axis=0) if members
                else np.zeros(d))
    np.testing.assert_allclose(targets[k], expected, rtol=1e-6, atol=1e-6)
  assert not has_target[4] and not has_target[7] and has_target.sum() == s - 2



def _write_frames(directory, num_views, color_size, rng):
  """Random-noise PNG frames of `color_size` and poses around the origin; view 2's pose is
  NaN. Returns a record-style frames dict (paths as bytes, like records read back)."""
  width, height = color_size
  paths, poses = [], []
  for v in range(num_views):
    path = os.path.join(directory, f"{v}.png")
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    paths.append(path.encode())
    angle = 2 * np.pi * v / num_views
    poses.append(testing.look_at(np.array([3 * np.cos(angle), 3 * np.sin(angle), 1.0]),
                          rng.normal(0, 0.2, 3)))
  poses = np.stack(poses).astype(np.float32)
  poses[2] = np.nan
  k = np.array([[0.8 * width, 0, (width - 1) / 2], [0, 0.8 * width, (height - 1) / 2],
                [0, 0, 1]], np.float32)
  return {"poses": poses, "color_paths": paths, "depth_paths": [b""] * num_views,
          "color_intrinsics": k, "depth_intrinsics": k, "color_size": np.array(color_size),
          "depth_size": np.array([0, 0]), "depth_scale": np.float32(1000)}


def _reference_features(frames, points, views, image_size, patch):
  """float64 for `_pooling_teacher(patch)`: project with the full-size intrinsics, map pixels
  through the resize (a pixel centre u becomes (u + 0.5) * s - 0.5), average patch blocks,
  sample bilinearly at the patch centres (edges clamped), max over the views that see the
  point (no occlusion)."""
  width, height = image_size
  color_w, color_h = frames["color_size"]
  gw, gh = width // patch, height // patch
  best = np.full((len(points), 3), -np.inf)
  for v in views:
    image = Image.open(frames["color_paths"][v].decode()).convert("RGB")
    image = np.asarray(image.resize(image_size, Image.BILINEAR), np.float64) / 255
    grid = 1 - image[:gh * patch, :gw * patch].reshape(gh, patch, gw, patch, 3).mean(axis=(1, 3))
    w2c = np.linalg.inv(frames["poses"][v].astype(np.float64))
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    full = cam @ frames["color_intrinsics"].astype(np.float64).T
    u = (full[:, 0] / cam[:, 2] + 0.5) * width / color_w - 0.5
    w = (full[:, 1] / cam[:, 2] + 0.5) * height / color_h - 0.5
    inside = (cam[:, 2] > 1e-3) & (u >= -0.5) & (u < width - 0.5) & (w >= -0.5) & (
        w < height - 0.5)
    gx = np.clip((u - (patch - 1) / 2) / patch, 0, gw - 1)
    gy = np.clip((w - (patch - 1) / 2) / patch, 0, gh - 1)
    x0 = np.minimum(np.floor(gx).astype(int), gw - 2)
    y0 = np.minimum(np.floor(gy).astype(int), gh - 2)
    fx, fy = (gx - x0)[:, None], (gy - y0)[:, None]
    sample = ((grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx) * (1 - fy) +
              (grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx) * fy)
    best[inside] = np.maximum(best[inside], sample[inside])
  seen = np.isfinite(best[:, 0])
  return np.where(seen[:, None], best, 0.0), seen


@pytest.mark.parametrize("patch,image_size", [(1, (40, 30)), (4, (42, 31))])
def test_features_match_float64_reference(tmp_path, patch, image_size):
  rng = np.random.default_rng(patch)
  frames = _write_frames(str(tmp_path), 8, (84, 62), rng)
  points = rng.uniform(-1.0, 1.0, (300, 3))
  points[-40:, 2] += 20.0  # high above every camera's field of view: never seen
  feats, seen = point_features.teacher_point_features(
      _pooling_teacher(patch), frames, points.astype(np.float32), image_size=image_size,
      views_per_batch=3, max_views=5, use_depth=False, occlusion_tolerance=1e3,
      zbuffer_stride=1)
  # 7 finite poses, 5 evenly spaced of them: frames 0, 3, 4, 6, 7 (two groups of 3, padded).
  views = point_features.select_views(frames["poses"], 5)
  np.testing.assert_array_equal(views, [0, 3, 4, 6, 7])
  ref, ref_seen = _reference_features(frames, points, views, image_size, patch)
  assert 0.2 < ref_seen.mean() < 1.0
  np.testing.assert_array_equal(seen, ref_seen)
  np.testing.assert_allclose(feats, ref, atol=2e-4)
  assert feats.dtype == np.float32 and not feats[~seen].any()


def test_missing_and_corrupt_images_name_the_file(tmp_path):
  rng = np.random.default_rng(0)
  frames = _write_frames(str(tmp_path), 4, (32, 24), rng)
  points = rng.uniform(-1, 1, (50, 3)).astype(np.float32)
  os.remove(frames["color_paths"][1].decode())
  with pytest.raises(InputError, match="missing") as e:
    point_features.teacher_point_features(RGB_TEACHER, frames, points, image_size=(16, 12))
  assert "1.png" in str(e.value)
  with open(frames["color_paths"][1].decode(), "wb") as f:
    f.write(b"\x89PNG not really")
  with pytest.raises(InputError, match="cannot read the colour image") as e:
    point_features.teacher_point_features(RGB_TEACHER, frames, points, image_size=(16, 12))
  assert "1.png" in str(e.value)
  Image.new("RGB", (20, 20)).save(frames["color_paths"][1].decode())
  with pytest.raises(InputError, match="20x20 but the dataset records 32x24"):
    point_features.teacher_point_features(RGB_TEACHER, frames, points, image_size=(16, 12))
  frames["poses"][:] = np.nan
  with pytest.raises(InputError, match="no frame with a finite camera pose"):
    point_features.teacher_point_features(RGB_TEACHER, frames, points, image_size=(16, 12))


@pytest.fixture(scope="module")
def synthetic_scene(tmp_path_factory):
  """One generated room (raw frame, 4 rendered RGB-D frames at 160x120)."""
  root = str(tmp_path_factory.mktemp("synthetic"))
  config = generate.SyntheticConfig(num_train=1, num_val=0, frames_per_scene=4,
                                    color_size=(160, 120), depth_size=(160, 120),
                                    mesh=MeshConfig(spacing=0.06))
  generate.generate_scene(root, "scene9000_00", 0, 3, config)
  return scannet.read_scannet_scene(root, "scene9000_00", with_frames=True)


def _colour_agreement(feats, seen, colors, rng):
  """(median |sampled - own| colour, mean of it, mean for random point pairs), in [0, 1]."""
  own = colors.astype(np.float32) / 255
  error = np.abs(feats[seen] - own[seen]).mean(1)
  others = own[rng.integers(0, len(own), seen.sum())]
  return float(np.median(error)), float(error.mean()), float(np.abs(feats[seen] - others).mean())


@pytest.mark.parametrize("image_size", [(160, 120), (80, 60)])
def test_rendered_room_colours_match(synthetic_scene, image_size):
  scene = synthetic_scene
  feats, seen = point_features.teacher_point_features(
      RGB_TEACHER, scene.frames, scene.coords, image_size=image_size, views_per_batch=3,
      use_depth=True, occlusion_tolerance=0.03, depth_tolerance=0.03,
      zbuffer_stride=max(1, image_size[0] // 80))
  median, mean, random_pairs = _colour_agreement(feats, seen, scene.colors,
                                                 np.random.default_rng(0))
  print(f"synthetic {image_size}: seen {seen.mean():.3f}, median |diff| {median:.4f}, "
        f"mean {mean:.4f}, random pairs {random_pairs:.4f}")
  assert seen.mean() > 0.2
  assert median < 0.03
  assert mean < 0.35 * random_pairs


def test_rendered_room_occlusion_matters(synthetic_scene):
  """Without the depth test, coarser z-buffer cells reject points seen through gaps."""
  scene = synthetic_scene
  errors = []
  for stride in (1, 2):
    feats, seen = point_features.teacher_point_features(
        RGB_TEACHER, scene.frames, scene.coords, image_size=(160, 120), use_depth=False,
        occlusion_tolerance=0.03, zbuffer_stride=stride)
    errors.append(_colour_agreement(feats, seen, scene.colors, np.random.default_rng(0))[1])
  assert errors[1] < 0.85 * errors[0]


def test_real_scannet_frames_colours_match():
  root = testing.require_scannet_mini()
  scene = mmdet3d.read_mmdet3d_scene(root, "scene0000_00")
  feats, seen = point_features.teacher_point_features(
      RGB_TEACHER, scene.frames, scene.coords, image_size=(320, 240), views_per_batch=8,
      max_views=30, use_depth=True, occlusion_tolerance=0.05, depth_tolerance=0.1,
      zbuffer_stride=4)
  median, mean, random_pairs = _colour_agreement(feats, seen, scene.colors,
                                                 np.random.default_rng(0))
  print(f"real scene0000_00 (30 of {len(scene.frames)} views): seen {seen.mean():.3f}, "
        f"median |diff| {median:.4f}, mean {mean:.4f}, random pairs {random_pairs:.4f}, "
        f"ratio {mean / random_pairs:.3f}")
  assert seen.mean() > 0.4
  assert mean < 0.5 * random_pairs


def test_resized_intrinsics_map_pixel_centres():
  k = np.array([[100.0, 0, 63.5], [0, 90.0, 47.5], [0, 0, 1]])
  out = point_features.resized_intrinsics(k, (128, 96), (32, 24))
  # The centre of the full image stays the centre; the corner pixel's outer edge too.
  point = np.array([0.3, -0.2, 1.0])
  full = k @ point
  small = out.astype(np.float64) @ point
  np.testing.assert_allclose(small[:2], (full[:2] + 0.5) / 4 - 0.5, atol=1e-5)
  np.testing.assert_allclose(out[:2, 2], [15.5, 11.5])
  assert out.dtype == np.float32
