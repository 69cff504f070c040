"""Vision Transformers of DINO (ViT-S/8, ViT-S/16) and DINOv2 (ViT-S/14, optional registers).

The parameter tree mirrors the official PyTorch names so checkpoints map one-to-one
(see `jaxseg.teachers.checkpoints`):

  patch_embed/{kernel (p,p,3,D), bias}   cls_token (1,1,D)   pos_embed (1,1+M*M,D)
  register_tokens (1,R,D)                 (DINOv2 "reg" variants only)
  blocks_{i}/norm1, attn/qkv, attn/proj, ls1/gamma, norm2, mlp/fc1, mlp/fc2, ls2/gamma
  norm                                    (final LayerNorm)

LayerScale (`ls1`, `ls2`) exists only for DINOv2. Blocks are pre-norm with exact (erf) GELU.
Position embeddings are stored for an M x M pretraining grid (M = 14 for 224/16, 28 for 224/8,
37 for DINOv2's 518/14) and resized bicubically for other grids exactly as the reference
`interpolate_pos_encoding` does (PyTorch bicubic, A = -0.75, scale factor (n + offset) / M).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Architecture of a ViT backbone.

  Attributes:
    patch_size: p, side of the square patches.
    embed_dim: D, token width (384 for ViT-S).
    depth: number of transformer blocks.
    num_heads: attention heads (6 for ViT-S).
    mlp_ratio: hidden width of the MLP over D.
    layerscale: DINOv2's per-channel residual scales `ls1` / `ls2`.
    num_register_tokens: R extra learned tokens after cls (DINOv2 "reg" variants).
    pos_grid: M, side of the grid the position embeddings were trained for.
    interpolate_offset: the 0.1 of the reference `interpolate_pos_encoding` (0 reproduces
      resizing by output size, as recent HF transformers does).
    norm_eps: LayerNorm epsilon.
  """
  patch_size: int
  embed_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_ratio: float = 4.0
  layerscale: bool = False
  num_register_tokens: int = 0
  pos_grid: int = 14
  interpolate_offset: float = 0.1
  norm_eps: float = 1e-6


# The architectures of the supported checkpoints, by converter / teacher arch name.
ARCHS = {
    "vit_small_patch8": ViTConfig(patch_size=8, pos_grid=28),
    "vit_small_patch16": ViTConfig(patch_size=16, pos_grid=14),
    "vit_small_patch14_dinov2": ViTConfig(patch_size=14, pos_grid=37, layerscale=True),
    "vit_small_patch14_reg4_dinov2": ViTConfig(patch_size=14, pos_grid=37, layerscale=True,
                                               num_register_tokens=4),
}


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
  """Keys cubic-convolution weights of the 4 taps at offsets -1, 0, 1, 2 for fraction t."""
  def near(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + 1
  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@functools.lru_cache(maxsize=64)
def bicubic_resize_matrix(in_size: int, out_size: int, offset: float) -> np.ndarray:
  """Matrix of PyTorch's `interpolate(mode='bicubic', align_corners=False)` along one axis.

  The output sample j reads the input at `(j + 0.5) * in_size / (out_size + offset) - 0.5`
  (the reference passes `scale_factor = (out_size + offset) / in_size`); taps outside the
  input are clamped to the border.

  Args:
    in_size: input length. out_size: output length. offset: the reference's 0.1 (or 0).
  Returns:
    float64 (out_size, in_size) matrix W with resized = W @ input.
  """
  scale = in_size / (out_size + offset)
  source = (np.arange(out_size) + 0.5) * scale - 0.5
  base = np.floor(source)
  weights = _cubic_weights(source - base)
  matrix = np.zeros((out_size, in_size))
  for tap in range(4):
    index = np.clip(base.astype(np.int64) - 1 + tap, 0, in_size - 1)
    np.add.at(matrix, (np.arange(out_size), index), weights[:, tap])
  return matrix


def interpolate_pos_embed(pos_embed: jax.Array, grid_h: int, grid_w: int,
                          offset: float) -> jax.Array:
  """Resizes position embeddings to a grid_h x grid_w patch grid.

  Args:
    pos_embed: (1, 1 + M*M, D) float, cls position first, then the M x M grid row-major.
    grid_h, grid_w: the patch grid of the image.
    offset: `ViTConfig.interpolate_offset`.
  Returns:
    (1, 1 + grid_h*grid_w, D), unchanged when the grid is the native M x M one.
  """
  side = math.isqrt(pos_embed.shape[1] - 1)
  if (grid_h, grid_w) == (side, side):
    return pos_embed
  dim = pos_embed.shape[-1]
  grid = pos_embed[0, 1:].reshape(side, side, dim).astype(jnp.float32)
  rows = jnp.asarray(bicubic_resize_matrix(side, grid_h, offset), jnp.float32)
  cols = jnp.asarray(bicubic_resize_matrix(side, grid_w, offset), jnp.float32)
  resized = jnp.einsum("hi,wj,ijd->hwd", rows, cols, grid,
                       precision=jax.lax.Precision.HIGHEST)
  resized = resized.reshape(1, grid_h * grid_w, dim).astype(pos_embed.dtype)
  return jnp.concatenate([pos_embed[:, :1], resized], axis=1)


class LayerScale(nn.Module):
  """Per-channel residual scale `gamma` (D,) of DINOv2."""
  dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.param("gamma", nn.initializers.constant(1e-5), (self.dim,))


class Attention(nn.Module):
  """Multi-head self-attention with one fused qkv projection laid out as [q | k | v]."""
  dim: int
  num_heads: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (B, T, D) -> (B, T, D)."""
    batch, tokens, _ = x.shape
    head_dim = self.dim // self.num_heads
    qkv = nn.Dense(3 * self.dim, name="qkv")(x)
    qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * head_dim**-0.5, k)
    attention = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", attention, v).reshape(batch, tokens, self.dim)
    return nn.Dense(self.dim, name="proj")(out)


class Mlp(nn.Module):
  """fc1 -> exact GELU -> fc2."""
  hidden_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Dense(self.hidden_dim, name="fc1")(x)
    return nn.Dense(self.out_dim, name="fc2")(nn.gelu(x, approximate=False))


class Block(nn.Module):
  """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""
  config: ViTConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    scale1 = LayerScale(cfg.embed_dim, name="ls1") if cfg.layerscale else (lambda y: y)
    scale2 = LayerScale(cfg.embed_dim, name="ls2") if cfg.layerscale else (lambda y: y)
    y = nn.LayerNorm(epsilon=cfg.norm_eps, name="norm1")(x)
    x = x + scale1(Attention(cfg.embed_dim, cfg.num_heads, name="attn")(y))
    y = nn.LayerNorm(epsilon=cfg.norm_eps, name="norm2")(x)
    hidden = int(cfg.embed_dim * cfg.mlp_ratio)
    return x + scale2(Mlp(hidden, cfg.embed_dim, name="mlp")(y))


class VisionTransformer(nn.Module):
  """DINO / DINOv2 ViT returning dense patch features after the final norm."""
  config: ViTConfig

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """Dense features of normalised images.

    Args:
      images: (B, H, W, 3) float, already ImageNet-normalised. Pixels past the last whole
        patch (H % p, W % p) are ignored, as by the reference strided convolution.
    Returns:
      (B, H // p, W // p, D) last-layer patch tokens after the final LayerNorm (cls and
      register tokens removed).
    """
    cfg = self.config
    dim, side = cfg.embed_dim, cfg.pos_grid
    patches = nn.Conv(dim, (cfg.patch_size, cfg.patch_size), strides=cfg.patch_size,
                      padding="VALID", name="patch_embed")(images)
    batch, grid_h, grid_w, _ = patches.shape
    x = patches.reshape(batch, grid_h * grid_w, dim)
    normal = nn.initializers.normal(0.02)
    cls_token = self.param("cls_token", normal, (1, 1, dim))
    pos_embed = self.param("pos_embed", normal, (1, 1 + side * side, dim))
    x = jnp.concatenate([jnp.broadcast_to(cls_token, (batch, 1, dim)), x], axis=1)
    x = x + interpolate_pos_embed(pos_embed, grid_h, grid_w, cfg.interpolate_offset)
    if cfg.num_register_tokens:
      registers = self.param("register_tokens", normal, (1, cfg.num_register_tokens, dim))
      registers = jnp.broadcast_to(registers, (batch, cfg.num_register_tokens, dim))
      x = jnp.concatenate([x[:, :1], registers, x[:, 1:]], axis=1)
    for i in range(cfg.depth):
      x = Block(cfg, name=f"blocks_{i}")(x)
    x = nn.LayerNorm(epsilon=cfg.norm_eps, name="norm")(x)
    return x[:, 1 + cfg.num_register_tokens:].reshape(batch, grid_h, grid_w, dim)
