"""Tests of the Flax DINO/DINOv2 ViT against a float64 numpy reference."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.models import vit
from jaxseg.teachers import checkpoints, fake_checkpoints, numpy_reference


@pytest.mark.parametrize("in_size,out_size,offset", [(14, 5, 0.1), (37, 8, 0.1), (5, 11, 0.1),
                                                     (6, 9, 0.0), (7, 7, 0.1)])
def test_bicubic_matrix_matches_per_sample_reference(in_size, out_size, offset):
  values = np.random.default_rng(0).standard_normal((in_size, 3))
  expected = numpy_reference.torch_bicubic_1d(values, out_size, (out_size + offset) / in_size)
  got = vit.bicubic_resize_matrix(in_size, out_size, offset) @ values
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bicubic_matrix_same_size_without_offset_is_identity():
  np.testing.assert_allclose(vit.bicubic_resize_matrix(9, 9, 0.0), np.eye(9), atol=1e-12)


@pytest.mark.parametrize("grid_h,grid_w", [(14, 14), (4, 6), (14, 9), (20, 3)])
def test_interpolate_pos_embed_matches_reference(grid_h, grid_w):
  pos = np.random.default_rng(1).standard_normal((1, 1 + 14 * 14, 8)).astype(np.float32)
  got = vit.interpolate_pos_embed(jnp.asarray(pos), grid_h, grid_w, 0.1)
  expected = numpy_reference.interpolate_pos_embed(pos.astype(np.float64), grid_h, grid_w)
  assert got.shape == (1, 1 + grid_h * grid_w, 8)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def _forward(state, config, images):
  params = checkpoints.params_from_state_dict(state, config, "fake")
  model = vit.VisionTransformer(config)
  normalized = (images - numpy_reference.IMAGENET_MEAN) / numpy_reference.IMAGENET_STD
  return np.asarray(jax.jit(model.apply)({"params": params},
                                         jnp.asarray(normalized, jnp.float32)))


def _assert_close(got, expected):
  scale = np.abs(expected).max()
  np.testing.assert_allclose(got / scale, expected / scale, atol=1e-5)


def test_dino_vits16_two_blocks_interpolated_grid_matches_numpy():
  state = fake_checkpoints.dino_state_dict(patch_size=16, depth=2, seed=3)
  config = vit.ViTConfig(patch_size=16, depth=2, pos_grid=14)
  images = np.random.default_rng(4).uniform(size=(2, 64, 88, 3))  # grid 4 x 5, crops 8 px
  got = _forward(state, config, images)
  expected = numpy_reference.vit_patch_features(state, images)
  assert got.shape == (2, 4, 5, 384)
  _assert_close(got, expected)


def test_dinov2_layerscale_and_registers_match_numpy():
  state = fake_checkpoints.dino_state_dict(patch_size=14, depth=2, image_size=518,
                                           layerscale=True, num_register_tokens=4, seed=5)
  config = vit.ViTConfig(patch_size=14, depth=2, pos_grid=37, layerscale=True,
                         num_register_tokens=4)
  images = np.random.default_rng(6).uniform(size=(1, 56, 70, 3))
  got = _forward(state, config, images)
  expected = numpy_reference.vit_patch_features(state, images)
  assert got.shape == (1, 4, 5, 384)
  _assert_close(got, expected)


def test_init_param_shapes_match_official_checkpoint_names():
  config = vit.ARCHS["vit_small_patch14_reg4_dinov2"]
  model = vit.VisionTransformer(config)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 3)))
  state = fake_checkpoints.dino_state_dict(patch_size=14, image_size=518, layerscale=True,
                                           num_register_tokens=4)
  mapped = checkpoints.params_from_state_dict(state, config, "fake")
  expected = jax.tree.map(lambda x: x.shape, mapped)
  assert jax.tree.map(lambda x: x.shape, shapes["params"]) == expected


@pytest.mark.parametrize("grid_h,grid_w", [(3, 7), (9, 4)])
def test_interpolate_pos_embed_matches_torch_outputs(grid_h, grid_w):
  """Against torch's own `interpolate(bicubic, scale_factor=(n + 0.1) / M)` (testdata/)."""
  reference = np.load(os.path.join(os.path.dirname(__file__), "..", "teachers", "testdata",
                                   "torch_reference.npz"))
  grid = reference["bicubic_input"][0].transpose(1, 2, 0)  # (5, 5, 8)
  pos = np.concatenate([np.zeros((1, 8)), grid.reshape(25, 8)])[None].astype(np.float32)
  got = np.asarray(vit.interpolate_pos_embed(jnp.asarray(pos), grid_h, grid_w, 0.1))
  expected = reference[f"bicubic_{grid_h}x{grid_w}"][0].transpose(1, 2, 0)
  np.testing.assert_allclose(got[0, 1:].reshape(grid_h, grid_w, 8), expected, rtol=1e-5,
                             atol=1e-5)
