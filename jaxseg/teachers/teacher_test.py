"""Tests of teacher loading (official .pth / HF safetensors / converted msgpack) and features."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from scipy import ndimage

from jaxseg.errors import InputError
from jaxseg.models.registry import TEACHERS
from jaxseg.teachers import (Teacher, build_teacher, fake_checkpoints, numpy_reference,
                             sample_features)

_SPEC = importlib.util.spec_from_file_location("convert_teacher", os.path.join(
    os.path.dirname(__file__), "..", "..", "tools", "convert_teacher.py"))
convert_teacher = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(convert_teacher)

TESTDATA = os.path.join(os.path.dirname(__file__), "testdata")


def _assert_close(got, expected, atol=2e-5):
  scale = np.abs(expected).max()
  np.testing.assert_allclose(np.asarray(got) / scale, expected / scale, atol=atol)


@pytest.fixture(scope="module")
def vits16_full(tmp_path_factory):
  """A full-shape DINO ViT-S/16 (12 blocks, 384 wide, 224 px pos grid) as a torch .pth."""
  state = fake_checkpoints.dino_state_dict(patch_size=16, depth=12, seed=11)
  path = str(tmp_path_factory.mktemp("dino") / "dino_deitsmall16_pretrain.pth")
  fake_checkpoints.save_torch_zip(path, state)
  return state, path


@pytest.fixture(scope="module")
def dinov2_reg(tmp_path_factory):
  """A 2-block DINOv2 ViT-S/14 with 4 registers: original state dict, .pth and HF file."""
  state = fake_checkpoints.dino_state_dict(patch_size=14, depth=2, image_size=518,
                                           layerscale=True, num_register_tokens=4, seed=12)
  folder = tmp_path_factory.mktemp("dinov2")
  pth = str(folder / "dinov2_vits14_reg4_pretrain.pth")
  fake_checkpoints.save_torch_zip(pth, state)
  hf_state = fake_checkpoints.dinov2_hf_state_dict(state)
  hf = str(folder / "model.safetensors")
  safetensors.numpy.save_file(hf_state, hf)
  return state, hf_state, pth, hf


def test_registered_teachers():
  assert {"dino_vits8", "dino_vits16", "dinov2_vits14", "dinov2_vits14_reg",
          "fallback"} <= set(TEACHERS.names())


def test_full_vits16_checkpoint_matches_numpy_at_native_size(vits16_full):
  state, path = vits16_full
  teacher = build_teacher("dino_vits16", path)
  assert (teacher.name, teacher.dim, teacher.patch_size) == ("dino_vits16", 384, 16)
  images = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
  got = teacher.features(jnp.asarray(images), upsample=False)
  expected = numpy_reference.vit_patch_features(state, images / 255.0)
  assert got.shape == (1, 14, 14, 384) and got.dtype == jnp.float32
  _assert_close(got, expected)


def test_converted_msgpack_gives_identical_features(vits16_full, tmp_path):
  _, path = vits16_full
  out = str(tmp_path / "dino_vits16.msgpack")
  convert_teacher.main(["--checkpoint", path, "--arch", "vit_small_patch16", "--out", out])
  original, converted = build_teacher("dino_vits16", path), build_teacher("dino_vits16", out)
  images = np.random.default_rng(1).uniform(size=(1, 48, 64, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(converted.features(images)),
                                np.asarray(original.features(images)))
  with pytest.raises(InputError, match="patch_size=16"):
    convert_teacher.convert(path, "vit_small_patch8", str(tmp_path / "x.msgpack"))


def test_dino_training_checkpoint_with_prefixes(tmp_path):
  state = fake_checkpoints.dino_state_dict(patch_size=8, depth=1, seed=2)
  wrapped = {
      "teacher": {**{f"backbone.{k}": v for k, v in state.items()},
                  "head.last_layer.weight_g": np.ones((4, 1), np.float32)},
      "student": {f"module.backbone.{k}": v + 1 for k, v in state.items()},
      "epoch": 100,
  }
  path = str(tmp_path / "checkpoint.pth")
  fake_checkpoints.save_torch_zip(path, wrapped)
  teacher = build_teacher("dino_vits8", path)
  images = np.random.default_rng(3).uniform(size=(2, 40, 24, 3))
  expected = numpy_reference.vit_patch_features(state, images)  # the teacher, not student
  _assert_close(teacher.features(images, upsample=False), expected)


def test_dinov2_hf_safetensors_and_original_pth_match_numpy(dinov2_reg):
  state, hf_state, pth, hf = dinov2_reg
  images = np.random.default_rng(4).uniform(size=(1, 42, 56, 3)).astype(np.float32)
  expected = numpy_reference.vit_patch_features(hf_state, images, hf=True)
  from_hf = build_teacher("dinov2_vits14_reg", hf).features(images, upsample=False)
  from_pth = build_teacher("dinov2_vits14_reg", pth).features(images, upsample=False)
  assert from_hf.shape == (1, 3, 4, 384)
  _assert_close(from_hf, expected)
  _assert_close(from_pth, numpy_reference.vit_patch_features(state, images))


def test_dinov2_without_registers_from_hf(tmp_path):
  state = fake_checkpoints.dino_state_dict(patch_size=14, depth=1, image_size=518,
                                           layerscale=True, seed=6)
  path = str(tmp_path / "model.safetensors")
  safetensors.numpy.save_file(
      {f"dinov2.{k}": v for k, v in fake_checkpoints.dinov2_hf_state_dict(state).items()}, path)
  images = np.random.default_rng(7).uniform(size=(1, 28, 42, 3))
  got = build_teacher("dinov2_vits14", path).features(images, upsample=False)
  _assert_close(got, numpy_reference.vit_patch_features(state, images))


def test_upsampling_matches_torch_bilinear():
  """Bilinear upsampling vs torch `interpolate(bilinear, align_corners=False)` outputs."""
  reference = np.load(os.path.join(TESTDATA, "torch_reference.npz"))
  grid = jnp.asarray(reference["bilinear_input"].transpose(0, 2, 3, 1))  # (1, 3, 4, 3)
  probe = Teacher("probe", 3, 4, {}, lambda params, images: grid)
  got = probe.features(jnp.zeros((1, 12, 20, 3), jnp.uint8))
  expected = reference["bilinear_12x20"].transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_l2_normalised_features_and_jit_inside_user_code(dinov2_reg):
  _, _, pth, _ = dinov2_reg
  teacher = build_teacher("dinov2_vits14_reg", pth)
  images = np.random.default_rng(8).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
  raw = np.asarray(teacher.features(images))
  unit = np.asarray(jax.jit(lambda p, x: teacher.apply(p, x, l2_normalize=True))(
      teacher.params, images))
  assert unit.shape == (2, 28, 28, 384)
  np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=-1, keepdims=True),
                             rtol=1e-4, atol=1e-6)


def test_bad_checkpoints_raise_input_errors(dinov2_reg, tmp_path):
  with pytest.raises(InputError, match="dl.fbaipublicfiles.com/dino/"):
    build_teacher("dino_vits8", None)
  missing = str(tmp_path / "nowhere.pth")
  with pytest.raises(InputError, match="not found") as error:
    build_teacher("dino_vits16", missing)
  assert missing in str(error.value)
  _, _, pth, _ = dinov2_reg
  with pytest.raises(InputError, match="patch_size=14") as error:
    build_teacher("dino_vits16", pth)
  assert pth in str(error.value)
  with pytest.raises(InputError, match="num_register_tokens=4"):
    build_teacher("dinov2_vits14", pth)
  garbage = tmp_path / "garbage.bin"
  garbage.write_bytes(b"\x00not a checkpoint")
  with pytest.raises(InputError, match="not a converted teacher file"):
    build_teacher("dino_vits16", str(garbage))
  incomplete = str(tmp_path / "incomplete.pth")
  state = fake_checkpoints.dino_state_dict(patch_size=16, depth=1)
  del state["blocks.0.mlp.fc2.bias"]
  fake_checkpoints.save_torch_zip(incomplete, state)
  with pytest.raises(InputError, match="blocks.0.mlp.fc2.bias"):
    build_teacher("dino_vits16", incomplete)


def test_sample_features_equals_torch_upsampling_at_pixels():
  reference = np.load(os.path.join(TESTDATA, "torch_reference.npz"))
  grid = reference["bilinear_input"].transpose(0, 2, 3, 1)  # (1, 3, 4, 3)
  upsampled = reference["bilinear_12x20"].transpose(0, 2, 3, 1)[0]  # (12, 20, 3)
  ys, xs = np.meshgrid(np.arange(12), np.arange(20), indexing="ij")
  pixels = np.stack([xs.ravel(), ys.ravel()], -1)[None].astype(np.float32)
  got = sample_features(jnp.asarray(grid), jnp.asarray(pixels), (12, 20))
  np.testing.assert_allclose(np.asarray(got)[0], upsampled.reshape(-1, 3), rtol=1e-5,
                             atol=1e-6)
  # Between pixels: bilinear on the grid (scipy), edges clamped.
  rng = np.random.default_rng(9)
  pixels = rng.uniform(-3, 23, (1, 50, 2)).astype(np.float32)
  got = np.asarray(sample_features(jnp.asarray(grid), jnp.asarray(pixels), (12, 20)))[0]
  gx = np.clip((pixels[0, :, 0] + 0.5) * 4 / 20 - 0.5, 0, 3)
  gy = np.clip((pixels[0, :, 1] + 0.5) * 3 / 12 - 0.5, 0, 2)
  expected = np.stack([ndimage.map_coordinates(grid[0, ..., c].astype(np.float64), [gy, gx],
                                               order=1, mode="nearest") for c in range(3)], -1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
