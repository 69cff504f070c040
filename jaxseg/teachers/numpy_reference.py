"""Test reference: a float64 numpy DINO/DINOv2 ViT written straight from the PyTorch code,
reading the checkpoint tensors by their original or Hugging Face names. Independent of
`jaxseg.models.vit` and of the name mapping in `jaxseg.teachers.checkpoints`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def torch_bicubic_1d(values: np.ndarray, out_size: int, scale_factor: float) -> np.ndarray:
  """PyTorch `interpolate(mode='bicubic', align_corners=False, scale_factor=s)` along axis 0,
  one output sample at a time (aten/src/ATen/native/UpSample.h, A = -0.75)."""
  a = -0.75
  def conv1(x):
    return ((a + 2) * x - (a + 3)) * x * x + 1
  def conv2(x):
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  n = values.shape[0]
  out = []
  for j in range(out_size):
    real = (1.0 / scale_factor) * (j + 0.5) - 0.5
    base = math.floor(real)
    t = real - base
    coeffs = [conv2(t + 1), conv1(t), conv1(1 - t), conv2(2 - t)]
    acc = 0.0
    for k, c in enumerate(coeffs):
      acc = acc + c * values[min(max(base - 1 + k, 0), n - 1)]
    out.append(acc)
  return np.stack(out)


def interpolate_pos_embed(pos_embed: np.ndarray, grid_h: int, grid_w: int,
                          offset: float = 0.1) -> np.ndarray:
  """DINO's `interpolate_pos_encoding`: (1, 1+M*M, D) -> (1, 1+h*w, D)."""
  m = int(round(math.sqrt(pos_embed.shape[1] - 1)))
  if grid_h == m and grid_w == m:
    return pos_embed
  grid = pos_embed[0, 1:].reshape(m, m, -1)
  rows = torch_bicubic_1d(grid, grid_h, (grid_h + offset) / m)
  both = torch_bicubic_1d(rows.transpose(1, 0, 2), grid_w, (grid_w + offset) / m)
  patches = both.transpose(1, 0, 2).reshape(1, grid_h * grid_w, -1)
  return np.concatenate([pos_embed[:, :1], patches], axis=1)


def _layer_norm(x, weight, bias, eps=1e-6):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x):
  return 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))


def _weights(state, i, hf):
  """Block i's tensors as float64 by role, from original or HF names."""
  g = lambda k: np.asarray(state[k], np.float64)
  if hf:
    p = f"encoder.layer.{i}."
    w = {"n1w": g(p + "norm1.weight"), "n1b": g(p + "norm1.bias"),
         "qw": g(p + "attention.attention.query.weight"),
         "qb": g(p + "attention.attention.query.bias"),
         "kw": g(p + "attention.attention.key.weight"),
         "kb": g(p + "attention.attention.key.bias"),
         "vw": g(p + "attention.attention.value.weight"),
         "vb": g(p + "attention.attention.value.bias"),
         "pw": g(p + "attention.output.dense.weight"), "pb": g(p + "attention.output.dense.bias"),
         "n2w": g(p + "norm2.weight"), "n2b": g(p + "norm2.bias"),
         "f1w": g(p + "mlp.fc1.weight"), "f1b": g(p + "mlp.fc1.bias"),
         "f2w": g(p + "mlp.fc2.weight"), "f2b": g(p + "mlp.fc2.bias")}
    if p + "layer_scale1.lambda1" in state:
      w["ls1"], w["ls2"] = g(p + "layer_scale1.lambda1"), g(p + "layer_scale2.lambda1")
    return w
  p = f"blocks.{i}."
  qkv_w, qkv_b = g(p + "attn.qkv.weight"), g(p + "attn.qkv.bias")
  d = qkv_w.shape[1]
  w = {"n1w": g(p + "norm1.weight"), "n1b": g(p + "norm1.bias"),
       "qw": qkv_w[:d], "kw": qkv_w[d:2 * d], "vw": qkv_w[2 * d:],
       "qb": qkv_b[:d], "kb": qkv_b[d:2 * d], "vb": qkv_b[2 * d:],
       "pw": g(p + "attn.proj.weight"), "pb": g(p + "attn.proj.bias"),
       "n2w": g(p + "norm2.weight"), "n2b": g(p + "norm2.bias"),
       "f1w": g(p + "mlp.fc1.weight"), "f1b": g(p + "mlp.fc1.bias"),
       "f2w": g(p + "mlp.fc2.weight"), "f2b": g(p + "mlp.fc2.bias")}
  if p + "ls1.gamma" in state:
    w["ls1"], w["ls2"] = g(p + "ls1.gamma"), g(p + "ls2.gamma")
  return w


def vit_patch_features(state: dict, images: np.ndarray, num_heads: int = 6,
                       hf: bool = False) -> np.ndarray:
  """Reference dense features.

  Args:
    state: checkpoint tensors (original names, or HF `Dinov2Model` names if hf).
    images: (B, H, W, 3) RGB in [0, 1].
  Returns:
    float64 (B, H // p, W // p, D) last-layer patch tokens after the final norm.
  """
  g = lambda k: np.asarray(state[k], np.float64)
  names = (("embeddings.patch_embeddings.projection.", "embeddings.cls_token",
            "embeddings.position_embeddings", "embeddings.register_tokens", "layernorm.")
           if hf else ("patch_embed.proj.", "cls_token", "pos_embed", "register_tokens", "norm."))
  proj, cls_name, pos_name, reg_name, norm = names
  weight, bias = g(proj + "weight"), g(proj + "bias")  # (D, 3, p, p)
  dim, _, p, _ = weight.shape
  x = (np.asarray(images, np.float64) - IMAGENET_MEAN) / IMAGENET_STD
  batch, height, width, _ = x.shape
  gh, gw = height // p, width // p
  x = x[:, :gh * p, :gw * p].reshape(batch, gh, p, gw, p, 3)
  tokens = np.einsum("bipjqc,dcpq->bijd", x, weight) + bias
  tokens = tokens.reshape(batch, gh * gw, dim)
  cls = np.broadcast_to(g(cls_name), (batch, 1, dim))
  x = np.concatenate([cls, tokens], 1) + interpolate_pos_embed(g(pos_name), gh, gw)
  registers = 0
  if reg_name in state:
    regs = g(reg_name)
    registers = regs.shape[1]
    x = np.concatenate([x[:, :1], np.broadcast_to(regs, (batch, registers, dim)), x[:, 1:]], 1)
  depth = len({k.split(".")[2 if hf else 1] for k in state
               if k.startswith("encoder.layer." if hf else "blocks.")})
  hd = dim // num_heads
  for i in range(depth):
    w = _weights(state, i, hf)
    y = _layer_norm(x, w["n1w"], w["n1b"])
    heads = lambda m, b: (y @ m.T + b).reshape(batch, -1, num_heads, hd).transpose(0, 2, 1, 3)
    q, k, v = heads(w["qw"], w["qb"]), heads(w["kw"], w["kb"]), heads(w["vw"], w["vb"])
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    logits = np.exp(logits - logits.max(-1, keepdims=True))
    attn = logits / logits.sum(-1, keepdims=True)
    out = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, -1, dim) @ w["pw"].T + w["pb"]
    x = x + out * w.get("ls1", 1.0)
    y = _layer_norm(x, w["n2w"], w["n2b"])
    y = _gelu(y @ w["f1w"].T + w["f1b"]) @ w["f2w"].T + w["f2b"]
    x = x + y * w.get("ls2", 1.0)
  x = _layer_norm(x, g(norm + "weight"), g(norm + "bias"))
  return x[:, 1 + registers:].reshape(batch, gh, gw, dim)
