"""2D teachers: per-pixel features of RGB images from DINO/DINOv2 ViTs or the fallback.

  teacher = build_teacher("dino_vits8", "/path/dino_deitsmall8_pretrain.pth")
  feats = teacher.features(images)  # uint8 (B, H, W, 3) -> float32 (B, H, W, 384)

Teachers are registered in `jaxseg.models.registry.TEACHERS` as factories
`factory(checkpoint_path) -> Teacher`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger
from jaxseg.models.registry import TEACHERS
from jaxseg.models.vit import ARCHS, ViTConfig, VisionTransformer
from jaxseg.teachers.checkpoints import load_vit_params
from jaxseg.teachers.fallback import FALLBACK_DIM, fallback_features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LOG = get_logger("teachers")


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
  """A registered ViT teacher: its architecture and where the official weights live."""
  name: str
  arch: str
  download: str


TEACHER_SPECS = {
    "dino_vits8": TeacherSpec(
        "dino_vits8", "vit_small_patch8",
        "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/"
        "dino_deitsmall8_pretrain.pth"),
    "dino_vits16": TeacherSpec(
        "dino_vits16", "vit_small_patch16",
        "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/"
        "dino_deitsmall16_pretrain.pth"),
    "dinov2_vits14": TeacherSpec(
        "dinov2_vits14", "vit_small_patch14_dinov2",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth "
        "or model.safetensors of https://huggingface.co/facebook/dinov2-small"),
    "dinov2_vits14_reg": TeacherSpec(
        "dinov2_vits14_reg", "vit_small_patch14_reg4_dinov2",
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"
        " or model.safetensors of https://huggingface.co/facebook/dinov2-with-registers-small"),
}


def to_unit_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] or float [0, 1] images (B, H, W, 3) -> float32 in [0, 1]."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


class Teacher:
  """Dense 2D features from images.

  Attributes:
    name: registry name; the fallback's says "fallback".
    dim: D, the feature width.
    patch_size: p; features are computed on an (H // p, W // p) grid (1 for pixel features).
    params: the parameter pytree passed to `apply` (empty for the fallback).
  """

  def __init__(self, name: str, dim: int, patch_size: int, params: Any,
               grid_fn: Callable[[Any, jax.Array], jax.Array]):
    """grid_fn(params, images f32 [0,1] (B,H,W,3)) -> (B, H // p, W // p, D)."""
    self.name = name
    self.dim = dim
    self.patch_size = patch_size
    self.params = params
    self._grid_fn = grid_fn
    self._jitted = jax.jit(self.apply, static_argnames=("upsample", "l2_normalize"))

  def apply(self, params: Any, images: jax.Array, *, upsample: bool = True,
            l2_normalize: bool = False) -> jax.Array:
    """Pure, jittable features.

    Args:
      params: `self.params` (an argument so jit does not bake weights in as constants).
      images: (B, H, W, 3) uint8 in [0, 255] or float in [0, 1].
      upsample: resize the patch grid bilinearly (half-pixel centres) to (H, W).
      l2_normalize: unit L2 norm per pixel.
    Returns:
      float32 (B, H, W, D) when upsample else (B, H // p, W // p, D).
    """
    batch, height, width, _ = images.shape
    grid = self._grid_fn(params, to_unit_float(images))
    if upsample and grid.shape[1:3] != (height, width):
      grid = jax.image.resize(grid, (batch, height, width, grid.shape[-1]), "bilinear")
    if l2_normalize:
      grid = grid / jnp.maximum(jnp.linalg.norm(grid, axis=-1, keepdims=True), 1e-12)
    return grid

  def features(self, images: jax.Array, *, upsample: bool = True,
               l2_normalize: bool = False) -> jax.Array:
    """`apply` with this teacher's params, jit-compiled; same shapes as `apply`."""
    return self._jitted(self.params, images, upsample=upsample, l2_normalize=l2_normalize)

  def __repr__(self) -> str:
    return f"Teacher(name={self.name!r}, dim={self.dim}, patch_size={self.patch_size})"


def sample_features(grid: jax.Array, pixels: jax.Array, image_size: tuple[int, int]
                    ) -> jax.Array:
  """Reads features at pixel positions without materialising the (H, W, D) upsampled map.

  Equals `features(images, upsample=True)[b, y, x]` at integer pixels (bilinear, half-pixel
  centres, edges clamped) and interpolates between them.

  Args:
    grid: (B, h, w, D) from `features(..., upsample=False)`.
    pixels: (B, N, 2) float (x = column, y = row) in image pixels; pixel (0, 0)'s centre is 0.
    image_size: (H, W) of the images the grid came from.
  Returns:
    (B, N, D) float32.
  """
  _, grid_h, grid_w, _ = grid.shape
  height, width = image_size
  gx = jnp.clip((pixels[..., 0] + 0.5) * (grid_w / width) - 0.5, 0, grid_w - 1)
  gy = jnp.clip((pixels[..., 1] + 0.5) * (grid_h / height) - 0.5, 0, grid_h - 1)
  x0 = jnp.clip(jnp.floor(gx).astype(jnp.int32), 0, max(grid_w - 2, 0))
  y0 = jnp.clip(jnp.floor(gy).astype(jnp.int32), 0, max(grid_h - 2, 0))
  x1, y1 = jnp.minimum(x0 + 1, grid_w - 1), jnp.minimum(y0 + 1, grid_h - 1)
  fx, fy = (gx - x0)[..., None], (gy - y0)[..., None]
  take = jax.vmap(lambda g, y, x: g[y, x])
  top = take(grid, y0, x0) * (1 - fx) + take(grid, y0, x1) * fx
  bottom = take(grid, y1, x0) * (1 - fx) + take(grid, y1, x1) * fx
  return (top * (1 - fy) + bottom * fy).astype(jnp.float32)


def _vit_grid_fn(config: ViTConfig) -> Callable[[Any, jax.Array], jax.Array]:
  model = VisionTransformer(config)
  mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
  std = jnp.asarray(IMAGENET_STD, jnp.float32)

  def grid_fn(params, images):
    return model.apply({"params": params}, (images - mean) / std)
  return grid_fn


def vit_teacher(spec: TeacherSpec, checkpoint_path: str | os.PathLike | None) -> Teacher:
  """Loads a DINO/DINOv2 checkpoint (.pth, model.safetensors or converted .msgpack)."""
  if checkpoint_path is None:
    raise InputError(None, f"teacher {spec.name!r} needs its pretrained checkpoint",
                     f"download {spec.download} and pass its path, or use the 'fallback' "
                     "teacher (no weights, much weaker)")
  path = os.fspath(checkpoint_path)
  if not os.path.isfile(path):
    raise InputError(path, f"checkpoint for teacher {spec.name!r} not found",
                     f"download {spec.download} to this path")
  expected = ARCHS[spec.arch]
  params, config = load_vit_params(path, expected.num_heads)
  for field in ("patch_size", "embed_dim", "layerscale", "num_register_tokens"):
    if getattr(config, field) != getattr(expected, field):
      raise InputError(path, f"checkpoint has {field}={getattr(config, field)} but teacher "
                       f"{spec.name!r} ({spec.arch}) needs {getattr(expected, field)}",
                       f"pass the {spec.name} checkpoint ({spec.download})")
  params = jax.tree.map(lambda x: jnp.asarray(np.asarray(x, np.float32)), params)
  _LOG.info("teacher %s: loaded %s (%d blocks, patch %d)", spec.name, path, config.depth,
            config.patch_size)
  return Teacher(spec.name, config.embed_dim, config.patch_size, params,
                 _vit_grid_fn(config))


def fallback_teacher(checkpoint_path: str | os.PathLike | None = None) -> Teacher:
  """The no-weights colour/texture teacher; logs a WARNING that it is not DINO."""
  if checkpoint_path is not None:
    raise InputError(checkpoint_path, "the fallback teacher takes no checkpoint",
                     "drop the checkpoint or pick a DINO/DINOv2 teacher")
  _LOG.warning(
      "USING THE NO-WEIGHTS FALLBACK TEACHER: hand-made colour/texture filters, NOT DINO. "
      "Distilled features will be far weaker than with DINO; results are not comparable to "
      "the paper. Pass a DINO checkpoint (teacher 'dino_vits8') for real runs.")
  return Teacher("fallback_not_dino", FALLBACK_DIM, 1, {},
                 lambda params, images: fallback_features(images))


for _name, _spec in TEACHER_SPECS.items():
  TEACHERS.register(_name)(functools.partial(vit_teacher, _spec))
TEACHERS.register("fallback")(fallback_teacher)


def build_teacher(name: str, checkpoint_path: str | os.PathLike | None = None) -> Teacher:
  """The registered teacher `name` ('dino_vits8', 'dino_vits16', 'dinov2_vits14',
  'dinov2_vits14_reg' or 'fallback') loaded from `checkpoint_path`."""
  return TEACHERS.get(name)(checkpoint_path)
