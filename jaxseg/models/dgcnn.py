"""DGCNN point encoder (Wang et al. 2019, "Dynamic Graph CNN") on clouds of P points.

  model = DGCNN(out_dim=128)
  variables = model.init(key, coords, feats, mask)
  per_point = model.apply(variables, coords, feats, mask, train=False)   # f32 [B, P, 128]

Inputs: coords f32 [B, P, 3], feats f32 [B, P, F] (e.g. RGB in [0, 1]; F may be 0), mask bool
[B, P] (False = padding). Output: f32 [B, P, out_dim], zeros on padding points. Padding rows may
hold anything (even NaN): they are zeroed on entry, never chosen as neighbours, excluded from
the global max and zeroed on exit, so they cannot change the output of valid points.

With `relative_input=True` the first EdgeConv sees only the offsets x_j - x_i of its input (no
theta x_i term): the network never sees where a point is, only its neighbourhood's shape, as a
convolution does (`jaxseg.models.sampled_dgcnn`'s `dgcnn_relative`).

Graph: the first EdgeConv uses the k-NN graph of the xyz coordinates; with `dynamic_graph=True`
(DGCNN) every later EdgeConv recomputes the k-NN graph in the feature space of its input,
otherwise the xyz graph is reused. Each point is its own first neighbour (as in DGCNN).

EdgeConv: h_i = max_j LeakyReLU(LN(theta x_i + phi (x_j - x_i))) over the k neighbours j, i.e. a
linear layer on the edge feature [x_i, x_j - x_i], computed per point before the gather so memory
is O(B * P * k * C_out). The EdgeConv outputs are concatenated, lifted to `global_dim`, max-pooled
over the valid points of each scene, broadcast back and passed through the per-point head.
LayerNorm (per point) replaces DGCNN's BatchNorm so padding never leaks through batch
statistics; there is no dropout, so `train` changes nothing and needs no rng.

Training runs it on voxel batches through `jaxseg.models.sampled_dgcnn` (registered as
`dgcnn`): farthest-point samples of each scene in, features of every voxel out.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.ops.knn import knn


def _activation(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.2)


class EdgeConv(nn.Module):
  """One EdgeConv layer: x [B, P, C], neighbours int32 [B, P, k], valid bool [B, P, k] ->
  [B, P, features] (float32 after the LayerNorm). relative: theta x_i is left out (a bias
  instead), so the layer sees only the offsets x_j - x_i and is translation invariant."""
  features: int
  dtype: Any = jnp.float32
  relative: bool = False

  @nn.compact
  def __call__(self, x, neighbours, valid):
    if self.relative:
      theta = self.param("bias", nn.initializers.zeros, (self.features,))
    else:
      theta = nn.Dense(self.features, dtype=self.dtype, name="theta")(x)      # acts on x_i
    phi = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="phi")(x)  # x_j - x_i
    phi_j = jax.vmap(lambda p, idx: p[idx])(phi, neighbours)          # [B, P, k, F]
    edge = (theta - phi)[:, :, None, :] + phi_j
    edge = _activation(nn.LayerNorm(name="norm")(edge))
    edge = jnp.where(valid[..., None], edge, -jnp.inf)
    return jnp.max(edge, axis=2)


class DGCNN(nn.Module):
  """DGCNN per-point encoder; see the module docstring for shapes and padding rules. `dtype`
  is the Dense layers' compute dtype (LayerNorm, graphs and the output stay float32)."""
  out_dim: int = 128
  k: int = 20
  edge_channels: Sequence[int] = (64, 64, 64)
  global_dim: int = 512
  head_channels: Sequence[int] = (256,)
  dynamic_graph: bool = True
  relative_input: bool = False
  knn_block_size: int = 1024
  dtype: Any = jnp.float32

  def _graph(self, space, mask):
    """k-NN graph of each scene: space f32 [B, P, C] -> (int32 [B, P, k], bool [B, P, k])."""
    space = jax.lax.stop_gradient(space).astype(jnp.float32)
    idx, sq = jax.vmap(lambda s, m: knn(s, self.k, mask=m, block_size=self.knn_block_size))(
        space, mask)
    return idx, jnp.isfinite(sq)

  @nn.compact
  def __call__(self, coords, feats, mask, train: bool = False):
    del train  # No train-time behaviour: LayerNorm, no dropout (see module docstring).
    mask = jnp.asarray(mask, bool)
    coords = jnp.where(mask[..., None], coords, 0.0)
    feats = jnp.where(mask[..., None], feats, 0.0)
    x = jnp.concatenate([coords, feats], axis=-1)
    xyz_graph = self._graph(coords, mask)
    layers = []
    for i, channels in enumerate(self.edge_channels):
      graph = self._graph(x, mask) if (i > 0 and self.dynamic_graph) else xyz_graph
      x = EdgeConv(channels, self.dtype, relative=(i == 0 and self.relative_input),
                   name=f"edge_conv{i}")(x, *graph)
      layers.append(x)
    local = jnp.concatenate(layers, axis=-1)
    lifted = _activation(nn.LayerNorm(name="global_norm")(
        nn.Dense(self.global_dim, dtype=self.dtype, name="global_dense")(local)))
    pooled = jnp.max(jnp.where(mask[..., None], lifted, -jnp.inf), axis=1, keepdims=True)
    pooled = jnp.where(jnp.any(mask, axis=1)[:, None, None], pooled, 0.0)
    h = jnp.concatenate([local, jnp.broadcast_to(pooled, lifted.shape)], axis=-1)
    for i, channels in enumerate(self.head_channels):
      h = _activation(nn.LayerNorm(name=f"head_norm{i}")(
          nn.Dense(channels, dtype=self.dtype, name=f"head_dense{i}")(h)))
    out = nn.Dense(self.out_dim, dtype=self.dtype, name="out")(h).astype(jnp.float32)
    return jnp.where(mask[..., None], out, 0.0)
