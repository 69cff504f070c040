"""Peer side of the sparse-conv benchmark: spconv and plain PyTorch on the JAX side's voxels.

Run with the peers' interpreter (bash tools/setup_peers.sh makes it); imports neither jaxseg nor
jax:

  .venv-peers/bin/python tools/peer_bench.py --input case.npz --out result.json [--threads 1]
  .venv-peers/bin/python tools/peer_bench.py --self-check          # tiny random case, asserts
  .venv-peers/bin/python tools/peer_bench.py --make-case SCENE.bin --out case.npz [--network]

Input .npz (all arrays float32 unless said otherwise):
  coords              int32 [N, 3]  unique non-negative voxel indices of one scan;
  feats_NAME          [N, C_in]     one layer case NAME per feats_NAME / weight_NAME pair;
  weight_NAME         [27, C_in, C_out]  offset k = a*9 + b*3 + c holds displacement
                      (a-1, b-1, c-1); out[i] = sum_k feats[j(i,k)] @ weight[k] with
                      j(i,k) the voxel at coords[i] + displacement(k) (cross-correlation,
                      submanifold: outputs only at input voxels, absent neighbours give 0);
  cotangent_NAME      [N, C_out]    optional (else `cotangent` when its shape fits, else a
                      seeded normal one): backward of loss = sum(out * cotangent);
  network             str           optional, "res16fpn18": adds the whole-network case;
  network_feats       [N, 6]        optional network input (else seeded normal);
  network_cotangent   [N, 128]      optional (else seeded normal).

Peers, per layer case: (a) spconv SubMConv3d(C_in, C_out, 3, bias=False) with the given weight
loaded, (b) plain PyTorch gather-matmul-scatter (the kernel map built once in torch, timed
separately as kernel_map_s). Both are checked against a float64 numpy reference of the formula
above, on every timed repeat: a peer whose output or gradients are off is reported with
correct=false, its timings moved to `timing_of_wrong_output` (forward_s etc. are null).
Forward runs under torch.no_grad(); forward+backward is forward, loss, backward (feature and
weight gradients). Times are medians of --repeats runs after one warm-up.

Whole network (Res16FPN18 as in jaxseg/models/res16fpn.py, batch 1, BatchNorm in training
mode): stem SubMConv 5^3 6->32, BN, ReLU; four stages of a k2s2 conv (channels kept), BN, ReLU
and two BasicBlocks to 32/64/128/256; per stage a bias-free Linear to 128, brought back to the
input voxels by trilinear interpolation a la MinkowskiEngine (see trilinear_table) and summed.
Forward times include every map build (kernel maps, downsampling, interpolation tables), as
the JAX model builds its pyramid inside the call. spconv and torch networks share weights
(copied torch -> spconv) and are compared with each other.

Known spconv 2.3 CPU faults handled here:
  * Its backward asserts with CPU-only torch ("Torch not compiled with CUDA enabled"):
    ops.indice_conv_backward asks torch.cuda for the current stream before taking its CPU
    gather-mm-scatter branch, which never uses it (the forward passes 0 on CPU).
    _patch_spconv_cpu_backward rebinds that name in spconv.pytorch.ops to return 0 when CUDA
    is unavailable, in this process only; site-packages is not edited.
  * Its CPU scatter-add (GatherCPU::scatter_add, OpenMP over rows) keeps the row pointers in
    variables shared by all threads, so with more than one OpenMP thread rows get added to the
    wrong place (upstream traveller59/spconv#679). spconv carries its own libgomp, which
    torch.set_num_threads does not reach: OMP_NUM_THREADS is set from --threads before any
    import. Use --threads 1 for spconv's comparable figure; at 2 its error is reported as is.
  * A 1x1 SubMConv3d multiplies by weight.view(C_in, C_out) although the parameter's shape is
    KRSC [C_out, 1, 1, 1, C_in]; _to_spconv_weight stores 1x1 kernels in that raw layout.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time


def _threads_from_argv(argv: list[str]) -> int:
  """The --threads value (default 1), read before torch is imported."""
  for i, arg in enumerate(argv):
    if arg == "--threads" and i + 1 < len(argv):
      return int(argv[i + 1])
    if arg.startswith("--threads="):
      return int(arg.split("=", 1)[1])
  return 1


if __name__ == "__main__":
  # spconv links its own libgomp: only the environment sets its thread count.
  for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = str(_threads_from_argv(sys.argv))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

try:
  import spconv  # noqa: E402
  import spconv.pytorch as spconv_torch  # noqa: E402
  SPCONV_ERROR = None
except Exception as error:  # pylint: disable=broad-except
  spconv, spconv_torch = None, None
  SPCONV_ERROR = f"{type(error).__name__}: {error}"

RTOL = 1e-4  # a result is correct when max |err| <= RTOL * max |reference| (per quantity)
NETWORK_PLANES = (32, 64, 128, 256)
NETWORK_OUT = 128


# ---------------------------------------------------------------------------------------------
# spconv fixes and weight layout


def _patch_spconv_cpu_backward() -> bool:
  """Makes spconv's native-algorithm backward run with CPU-only torch; True if patched.

  spconv.pytorch.ops.indice_conv_backward calls get_current_stream() (torch.cuda's current
  stream) unconditionally, before its CPU branch that ignores the stream. Rebinding the name
  the ops module imported to `lambda: 0` (the value its forward uses on CPU) removes the CUDA
  assertion. Only done when CUDA is unavailable; no file is changed.
  """
  if spconv_torch is None or torch.cuda.is_available():
    return False
  from spconv.pytorch import ops  # pylint: disable=import-outside-toplevel
  ops.get_current_stream = lambda: 0
  return True


def _to_spconv_weight(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
  """Our kernel [K^3, C_in, C_out] (offset a*K*K + b*K + c) -> spconv's parameter of `shape`.

  spconv 2.3 keeps weights as KRSC [C_out, K, K, K, C_in] with spatial index (a, b, c) along
  the index columns 1..3, except that a 1x1 conv reads its buffer as [C_in, C_out].
  """
  num_offsets, c_in, c_out = weight.shape
  if num_offsets == 1:
    return weight[0].contiguous().view(shape)
  k = round(num_offsets ** (1 / 3))
  return weight.reshape(k, k, k, c_in, c_out).permute(4, 0, 1, 2, 3).contiguous()


def _from_spconv_weight(weight: torch.Tensor) -> torch.Tensor:
  """spconv KRSC [C_out, K, K, K, C_in] (K > 1) -> ours [K^3, C_in, C_out]."""
  c_out, k = weight.shape[0], weight.shape[1]
  return weight.permute(1, 2, 3, 4, 0).reshape(k ** 3, weight.shape[-1], c_out)


def _spconv_input(feats: torch.Tensor, coords: torch.Tensor, indice_dict=None):
  """A batch-1 SparseConvTensor over coords int64 [N, 3]; the grid is padded to 16 per axis
  so that four k2s2 convs drop no voxel."""
  indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32),
                       coords.to(torch.int32)], 1)
  shape = [int(-(-(int(m) + 1) // 16) * 16) for m in coords.max(0).values]
  return spconv_torch.SparseConvTensor(feats, indices, shape, 1, indice_dict=indice_dict)


# ---------------------------------------------------------------------------------------------
# Kernel maps and interpolation tables (torch, shared by the plain-torch peer and the network)


class KeyTable:
  """Row lookup of integer coordinates table int64 [M, 3] by sorted linear keys; queries may
  lie up to `pad` outside the table's bounding box on each side. Keys are linear in the
  coordinates, so a displacement d shifts every key by the same delta(d)."""

  def __init__(self, table: torch.Tensor, pad: int):
    self.low = table.min(0).values - pad
    self.extent = table.max(0).values - self.low + 1 + pad
    self.sorted_keys, self.order = torch.sort(self.keys(table))

  def keys(self, coords: torch.Tensor) -> torch.Tensor:
    """int64 [..., 3] -> int64 [...]."""
    c = coords - self.low
    return (c[..., 0] * self.extent[1] + c[..., 1]) * self.extent[2] + c[..., 2]

  def delta(self, offset: torch.Tensor) -> int:
    """Key shift of displacement offset int64 [3]."""
    return int((offset[0] * self.extent[1] + offset[1]) * self.extent[2] + offset[2])

  def find_keys(self, keys: torch.Tensor) -> torch.Tensor:
    """keys int64 [...] -> (positions in sorted_keys int64 [...], hit bool [...])."""
    pos = torch.searchsorted(self.sorted_keys, keys).clamp_(max=len(self.sorted_keys) - 1)
    return pos, self.sorted_keys[pos] == keys

  def find(self, query: torch.Tensor) -> torch.Tensor:
    """query int64 [..., 3] -> row int64 [...], -1 where absent."""
    pos, hit = self.find_keys(self.keys(query))
    return torch.where(hit, self.order[pos], -1)


def kernel_offsets(kernel_size: int, centered: bool = True) -> torch.Tensor:
  """int64 [K^3, 3]: offset a*K*K + b*K + c is (a, b, c) - r with r = K // 2 if centered."""
  r = kernel_size // 2 if centered else 0
  axis = torch.arange(kernel_size) - r
  return torch.cartesian_prod(axis, axis, axis)


def submanifold_map(coords: torch.Tensor, kernel_size: int):
  """Neighbour pairs of a submanifold conv over coords int64 [N, 3].

  Returns a list over offsets k of (in_rows int64 [P_k], out_rows int64 [P_k]) with
  coords[in_rows] = coords[out_rows] + displacement(k); the centre offset is the identity and
  left as None. Offsets k and K^3-1-k are mirror images, so only half are searched: the voxels
  are visited in key order, so each search runs over sorted queries.
  """
  table = KeyTable(coords, kernel_size // 2)
  num_offsets = kernel_size ** 3
  pairs = [None] * num_offsets
  for k, offset in enumerate(kernel_offsets(kernel_size)[:num_offsets // 2]):
    pos, hit = table.find_keys(table.sorted_keys + table.delta(offset))
    found = torch.nonzero(hit).squeeze(1)
    out_rows, in_rows = table.order[found], table.order[pos[found]]
    pairs[k] = (in_rows, out_rows)
    pairs[num_offsets - 1 - k] = (out_rows, in_rows)
  return pairs


def downsample_map(coords: torch.Tensor):
  """k2s2 conv map: fine coords int64 [N, 3] -> (coarse int64 [M, 3], pairs over the 8
  offsets (a, b, c) in {0,1}^3, offset a*4 + b*2 + c: (fine rows, coarse rows))."""
  parent = torch.div(coords, 2, rounding_mode="floor")
  extent = parent.max(0).values + 1
  keys = (parent[:, 0] * extent[1] + parent[:, 1]) * extent[2] + parent[:, 2]
  unique_keys, coarse_rows = torch.unique(keys, return_inverse=True)
  coarse = torch.stack([unique_keys // (extent[1] * extent[2]),
                        (unique_keys // extent[2]) % extent[1], unique_keys % extent[2]], 1)
  code = ((coords - 2 * parent) * torch.tensor([4, 2, 1])).sum(1)
  pairs = []
  for k in range(8):
    fine_rows = torch.nonzero(code == k).squeeze(1)
    pairs.append((fine_rows, coarse_rows[fine_rows]))
  return coarse, pairs


def trilinear_table(fine: torch.Tensor, coarse: torch.Tensor, stride: int):
  """Trilinear interpolation a la MinkowskiEngine from a stride-`stride` grid to voxels.

  fine int64 [N, 3] (level-0 voxels), coarse int64 [M, 3] (the stage's voxels in its own
  grid). For a voxel q, base = floor(q / s) and f = (q mod s) / s per axis; corner base + o,
  o in {0,1}^3, gets prod over axes of (f if o = 1 else 1 - f) when present, nothing when
  absent (no renormalisation).

  Returns the P terms with a non-zero weight: (voxel rows int64 [P], corner rows int64 [P],
  weights float32 [P]).
  """
  base = torch.div(fine, stride, rounding_mode="floor")
  frac = (fine - base * stride).to(torch.float32) / stride
  table = KeyTable(coarse, 1)
  voxels, corners, weights = [], [], []
  for offset in kernel_offsets(2, centered=False):
    found = table.find(base + offset)
    w = torch.where(offset.bool(), frac, 1 - frac).prod(1)
    keep = torch.nonzero((found >= 0) & (w > 0)).squeeze(1)
    voxels.append(keep)
    corners.append(found[keep])
    weights.append(w[keep])
  return torch.cat(voxels), torch.cat(corners), torch.cat(weights)


def interpolate(x: torch.Tensor, table, num_out: int) -> torch.Tensor:
  """x float [M, C] on a stage's voxels, table from trilinear_table -> [num_out, C]."""
  voxels, corners, weights = table
  out = x.new_zeros(num_out, x.shape[1])
  return out.index_add_(0, voxels, x.index_select(0, corners) * weights[:, None])


# ---------------------------------------------------------------------------------------------
# Plain PyTorch gather-matmul-scatter


def gather_scatter_conv(feats: torch.Tensor, weight: torch.Tensor, pairs, num_out: int,
                        center: int | None) -> torch.Tensor:
  """Sparse conv by gather-matmul-scatter: feats [N, C_in], weight [K, C_in, C_out] ->
  [num_out, C_out]. pairs[k] = (in_rows, out_rows) or None; `center` (an identity offset of a
  submanifold conv) is a plain matmul."""
  if center is not None:
    out = feats @ weight[center]
  else:
    out = feats.new_zeros(num_out, weight.shape[-1])
  for k, pair in enumerate(pairs):
    if pair is None or k == center or len(pair[0]) == 0:
      continue
    in_rows, out_rows = pair
    out.index_add_(0, out_rows, feats.index_select(0, in_rows) @ weight[k])
  return out


# ---------------------------------------------------------------------------------------------
# float64 numpy reference of one submanifold layer


def reference_subm_conv(coords: np.ndarray, feats: np.ndarray, weight: np.ndarray,
                        cotangent: np.ndarray):
  """float64 out [N, C_out], d feats [N, C_in], d weight [27, C_in, C_out] of the documented
  formula, with loss = sum(out * cotangent). Independent of the torch maps: numpy keys from
  ravel_multi_index over a 1-voxel-padded box."""
  c = coords.astype(np.int64) + 1
  dims = tuple(c.max(0) + 2)
  keys = np.ravel_multi_index(c.T, dims)
  order = np.argsort(keys)
  sorted_keys = keys[order]
  f = feats.astype(np.float64)
  w = weight.astype(np.float64)
  g = cotangent.astype(np.float64)
  out = np.zeros((len(c), w.shape[2]))
  d_feats = np.zeros_like(f)
  d_weight = np.zeros_like(w)
  for k in range(27):
    shift = np.array([k // 9, (k // 3) % 3, k % 3]) - 1
    query = np.ravel_multi_index((c + shift).T, dims)
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(keys) - 1)
    out_rows = np.nonzero(sorted_keys[pos] == query)[0]
    in_rows = order[pos[out_rows]]
    out[out_rows] += f[in_rows] @ w[k]
    d_feats[in_rows] += g[out_rows] @ w[k].T
    d_weight[k] = f[in_rows].T @ g[out_rows]
  return out, d_feats, d_weight


def _error(got: torch.Tensor, want: np.ndarray) -> dict:
  """Max abs error, the tolerance RTOL * max |want| and the rows over it."""
  err = np.abs(got.detach().numpy().astype(np.float64) - want)
  tol = RTOL * max(float(np.abs(want).max()), 1e-12)
  row_err = err.reshape(len(err), -1).max(1)
  return {"max_abs_err": float(err.max()), "tol": tol,
          "rows_over_tol": int(np.sum(row_err > tol)), "rows": len(err)}


def _worst(errors: list[dict]) -> dict:
  return max(errors, key=lambda e: e["max_abs_err"] / e["tol"])


# ---------------------------------------------------------------------------------------------
# Timing


def _median_time(fn, repeats: int, check=None) -> float:
  """Median seconds of `repeats` calls of fn() after one warm-up; check(result) runs on every
  result (untimed)."""
  result = fn()
  if check is not None:
    check(result)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
    if check is not None:
      check(result)
  return float(np.median(times))


def _round(seconds: float) -> float:
  return float(f"{seconds:.5g}")


# ---------------------------------------------------------------------------------------------
# Layer cases


class _LayerPeer:
  """One peer's forward / forward+backward closures for a layer case."""

  def __init__(self, forward, forward_backward):
    self.forward = forward                    # () -> out [N, C_out]
    self.forward_backward = forward_backward  # () -> (out, d feats, d weight ours-layout)


def _torch_layer(feats, weight, cotangent, pairs) -> _LayerPeer:
  """Plain gather-matmul-scatter over precomputed pairs (centre offset 13)."""
  n = len(feats)

  def forward():
    with torch.no_grad():
      return gather_scatter_conv(feats, weight, pairs, n, 13)

  def forward_backward():
    f = feats.detach().requires_grad_()
    w = weight.detach().requires_grad_()
    out = gather_scatter_conv(f, w, pairs, n, 13)
    (out * cotangent).sum().backward()
    return out, f.grad, w.grad

  return _LayerPeer(forward, forward_backward)


def _spconv_layer(coords, feats, weight, cotangent) -> tuple[_LayerPeer, float]:
  """spconv SubMConv3d with the weight loaded; its pairs are built once (indice_key) and
  reused, as the torch peer's are.

  Returns the peer and an estimate of spconv's own pair build: one uncached forward minus
  one cached forward (single runs, so rough).
  """
  conv = spconv_torch.SubMConv3d(weight.shape[1], weight.shape[2], 3, bias=False,
                                 indice_key="subm3")
  with torch.no_grad():
    conv.weight.copy_(_to_spconv_weight(weight, conv.weight.shape))
  with torch.no_grad():
    cached = conv(_spconv_input(feats, coords)).indice_dict

  def forward():
    with torch.no_grad():
      return conv(_spconv_input(feats, coords, cached)).features

  def forward_uncached():
    with torch.no_grad():
      return conv(_spconv_input(feats, coords)).features

  def forward_backward():
    conv.weight.grad = None
    f = feats.detach().requires_grad_()
    out = conv(_spconv_input(f, coords, cached)).features
    (out * cotangent).sum().backward()
    return out, f.grad, _from_spconv_weight(conv.weight.grad)

  map_s = max(_median_time(forward_uncached, 1) - _median_time(forward, 1), 0.0)
  return _LayerPeer(forward, forward_backward), map_s


def _measure_layer_peer(peer: _LayerPeer, reference, repeats: int) -> dict:
  """Times a peer and checks every result against the float64 reference."""
  out_ref, d_feats_ref, d_weight_ref = reference
  fwd_errors, feats_errors, weight_errors = [], [], []
  forward_s = _median_time(peer.forward, repeats,
                           lambda out: fwd_errors.append(_error(out, out_ref)))

  def check_backward(result):
    out, d_feats, d_weight = result
    fwd_errors.append(_error(out, out_ref))
    feats_errors.append(_error(d_feats, d_feats_ref))
    weight_errors.append(_error(d_weight, d_weight_ref))

  forward_backward_s = _median_time(peer.forward_backward, repeats, check_backward)
  worst = {"forward": _worst(fwd_errors), "grad_feats": _worst(feats_errors),
           "grad_weight": _worst(weight_errors)}
  correct = all(e["max_abs_err"] <= e["tol"] for e in worst.values())
  timing = {"forward_s": _round(forward_s), "forward_backward_s": _round(forward_backward_s)}
  row = {"max_abs_err": {k: e["max_abs_err"] for k, e in worst.items()},
         "tolerance": {k: e["tol"] for k, e in worst.items()},
         "rows_over_tolerance": {"forward": worst["forward"]["rows_over_tol"],
                                 "grad_feats": worst["grad_feats"]["rows_over_tol"],
                                 "rows": worst["forward"]["rows"]},
         "checked_runs": len(fwd_errors), "correct": correct}
  if correct:
    row.update(timing)
  else:
    row.update({"forward_s": None, "forward_backward_s": None,
                "timing_of_wrong_output": timing})
  return row


def _cotangent(data, name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
  """cotangent_NAME, else `cotangent` when its shape fits, else seeded normal [N, C_out]."""
  for key in (f"cotangent_{name}", "cotangent"):
    if key in data and data[key].shape == shape:
      return data[key].astype(np.float32)
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def layer_case(coords: np.ndarray, feats: np.ndarray, weight: np.ndarray,
               cotangent: np.ndarray, repeats: int, notes: list[str]) -> dict:
  """Both peers on one submanifold k3 layer: coords int [N, 3], feats [N, C_in],
  weight [27, C_in, C_out], cotangent [N, C_out]."""
  reference = reference_subm_conv(coords, feats, weight, cotangent)
  coords_t = torch.from_numpy(coords.astype(np.int64))
  feats_t, weight_t = torch.from_numpy(feats), torch.from_numpy(weight)
  cotangent_t = torch.from_numpy(cotangent)
  map_s = _median_time(lambda: submanifold_map(coords_t, 3), repeats)
  pairs = submanifold_map(coords_t, 3)
  row = {"voxels": len(coords), "c_in": weight.shape[1], "c_out": weight.shape[2],
         "mean_neighbours": round(1 + sum(len(p[0]) for p in pairs if p) / len(coords), 3),
         "kernel_map_s": _round(map_s)}
  peer = _torch_layer(feats_t, weight_t, cotangent_t, pairs)
  row["torch_gather_scatter"] = _measure_layer_peer(peer, reference, repeats)
  if spconv_torch is None:
    row["spconv"] = {"unavailable": SPCONV_ERROR}
  else:
    peer, sp_map_s = _spconv_layer(coords_t, feats_t, weight_t, cotangent_t)
    row["spconv"] = _measure_layer_peer(peer, reference, repeats)
    row["spconv"]["kernel_map_s_approx"] = _round(sp_map_s)
  for name in ("torch_gather_scatter", "spconv"):
    if row[name].get("correct") is False:
      notes.append(f"{name} is WRONG on {weight.shape[1]}->{weight.shape[2]} at "
                   f"{torch.get_num_threads()} threads: {row[name]['max_abs_err']}, "
                   f"rows over tolerance {row[name]['rows_over_tolerance']}")
  return row


# ---------------------------------------------------------------------------------------------
# Res16FPN18 in plain torch (gather-scatter) and in spconv, with the same parameter names


def _bn(channels: int) -> nn.BatchNorm1d:
  return nn.BatchNorm1d(channels, eps=1e-5, momentum=0.02)


def _he_normal(num_offsets: int, c_in: int, c_out: int) -> nn.Parameter:
  return nn.Parameter(torch.randn(num_offsets, c_in, c_out) * np.sqrt(2 / (num_offsets * c_in)))


class _Pyramid:
  """Every map the plain-torch Res16FPN18 needs for coords int64 [N, 3]: level coords (strides
  1..16), the stem's 5^3 map, the 3^3 maps of levels 1..4, the four k2s2 maps and the four
  interpolation tables back to level 0."""

  def __init__(self, coords: torch.Tensor, num_stages: int = 4):
    self.coords = [coords]
    self.down = []
    for _ in range(num_stages):
      coarse, pairs = downsample_map(self.coords[-1])
      self.coords.append(coarse)
      self.down.append(pairs)
    self.stem_map = submanifold_map(coords, 5)
    self.subm = [None] + [submanifold_map(c, 3) for c in self.coords[1:]]
    self.tables = [None] + [trilinear_table(coords, c, 2 ** level)
                            for level, c in enumerate(self.coords) if level > 0]


class _TorchConv(nn.Module):
  """Gather-scatter conv with our kernel layout [K, C_in, C_out]."""

  def __init__(self, num_offsets: int, c_in: int, c_out: int):
    super().__init__()
    self.weight = _he_normal(num_offsets, c_in, c_out)

  def forward(self, x, pairs, num_out: int, center: int | None):
    if self.weight.shape[0] == 1:
      return x @ self.weight[0]
    return gather_scatter_conv(x, self.weight, pairs, num_out, center)


class _TorchBlock(nn.Module):
  """BasicBlock over one level's 3^3 map."""

  def __init__(self, c_in: int, c_out: int):
    super().__init__()
    self.conv1, self.bn1 = _TorchConv(27, c_in, c_out), _bn(c_out)
    self.conv2, self.bn2 = _TorchConv(27, c_out, c_out), _bn(c_out)
    if c_in != c_out:
      self.shortcut, self.shortcut_bn = _TorchConv(1, c_in, c_out), _bn(c_out)

  def forward(self, x, pairs):
    n = len(x)
    out = torch.relu(self.bn1(self.conv1(x, pairs, n, 13)))
    out = self.bn2(self.conv2(out, pairs, n, 13))
    shortcut = x
    if hasattr(self, "shortcut"):
      shortcut = self.shortcut_bn(self.shortcut(x, None, n, 0))
    return torch.relu(out + shortcut)


class TorchRes16FPN18(nn.Module):
  """Res16FPN18 by gather-matmul-scatter: (coords int64 [N, 3], feats [N, 6]) -> [N, 128]."""

  def __init__(self, in_dim: int = 6, planes=NETWORK_PLANES, out_dim: int = NETWORK_OUT):
    super().__init__()
    self.stem, self.stem_bn = _TorchConv(125, in_dim, 32), _bn(32)
    channels = 32
    for s, p in enumerate(planes, 1):
      setattr(self, f"down{s}", _TorchConv(8, channels, channels))
      setattr(self, f"down{s}_bn", _bn(channels))
      setattr(self, f"block{s}a", _TorchBlock(channels, p))
      setattr(self, f"block{s}b", _TorchBlock(p, p))
      setattr(self, f"head{s}", nn.Linear(p, out_dim, bias=False))
      channels = p
    self.num_stages = len(planes)

  def forward(self, coords: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    pyramid = _Pyramid(coords, self.num_stages)
    x = torch.relu(self.stem_bn(self.stem(feats, pyramid.stem_map, len(feats), 62)))
    out = 0
    for s in range(1, self.num_stages + 1):
      x = getattr(self, f"down{s}")(x, pyramid.down[s - 1], len(pyramid.coords[s]), None)
      x = torch.relu(getattr(self, f"down{s}_bn")(x))
      x = getattr(self, f"block{s}a")(x, pyramid.subm[s])
      x = getattr(self, f"block{s}b")(x, pyramid.subm[s])
      out = out + interpolate(getattr(self, f"head{s}")(x), pyramid.tables[s], len(feats))
    return out


def _sp_bn_relu(bn: nn.Module, x, relu: bool = True):
  features = bn(x.features)
  return x.replace_feature(torch.relu(features) if relu else features)


class _SpconvBlock(nn.Module):
  """BasicBlock of spconv SubMConv3d sharing the level's indice_key."""

  def __init__(self, c_in: int, c_out: int, key: str):
    super().__init__()
    self.conv1 = spconv_torch.SubMConv3d(c_in, c_out, 3, bias=False, indice_key=key)
    self.bn1 = _bn(c_out)
    self.conv2 = spconv_torch.SubMConv3d(c_out, c_out, 3, bias=False, indice_key=key)
    self.bn2 = _bn(c_out)
    if c_in != c_out:
      self.shortcut = spconv_torch.SubMConv3d(c_in, c_out, 1, bias=False)
      self.shortcut_bn = _bn(c_out)

  def forward(self, x):
    out = _sp_bn_relu(self.bn1, self.conv1(x))
    out = _sp_bn_relu(self.bn2, self.conv2(out), relu=False)
    shortcut = x.features
    if hasattr(self, "shortcut"):
      shortcut = self.shortcut_bn(self.shortcut(x).features)
    return out.replace_feature(torch.relu(out.features + shortcut))


class SpconvRes16FPN18(nn.Module):
  """Res16FPN18 in spconv; same parameter names as TorchRes16FPN18."""

  def __init__(self, in_dim: int = 6, planes=NETWORK_PLANES, out_dim: int = NETWORK_OUT):
    super().__init__()
    self.stem = spconv_torch.SubMConv3d(in_dim, 32, 5, bias=False, indice_key="stem")
    self.stem_bn = _bn(32)
    channels = 32
    for s, p in enumerate(planes, 1):
      setattr(self, f"down{s}", spconv_torch.SparseConv3d(channels, channels, 2, 2, bias=False,
                                                          indice_key=f"down{s}"))
      setattr(self, f"down{s}_bn", _bn(channels))
      setattr(self, f"block{s}a", _SpconvBlock(channels, p, f"subm{s}"))
      setattr(self, f"block{s}b", _SpconvBlock(p, p, f"subm{s}"))
      setattr(self, f"head{s}", nn.Linear(p, out_dim, bias=False))
      channels = p
    self.num_stages = len(planes)

  def forward(self, coords: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    x = _sp_bn_relu(self.stem_bn, self.stem(_spconv_input(feats, coords)))
    out = 0
    for s in range(1, self.num_stages + 1):
      x = _sp_bn_relu(getattr(self, f"down{s}_bn"), getattr(self, f"down{s}")(x))
      x = getattr(self, f"block{s}b")(getattr(self, f"block{s}a")(x))
      table = trilinear_table(coords, x.indices[:, 1:].long(), 2 ** s)
      out = out + interpolate(getattr(self, f"head{s}")(x.features), table, len(feats))
    return out


def copy_torch_to_spconv(source: TorchRes16FPN18, target: nn.Module) -> None:
  """Writes every parameter and buffer of `source` into `target` (conv layouts converted)."""
  target_state = target.state_dict()
  with torch.no_grad():
    for name, value in source.state_dict().items():
      dest = target_state[name]
      if value.shape != dest.shape:
        value = _to_spconv_weight(value, dest.shape)
      dest.copy_(value)


def _randomize_bn(net: nn.Module, seed: int) -> None:
  """BN affine away from (1, 0) so that the comparison sees it."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, nn.BatchNorm1d):
        module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=gen))
        module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))


# The network's loss is piecewise linear (ReLU): a 1e-6 relative change of its input moves the
# input gradient by ~0.7% (rel. L2) in float64 on scene0000_00, so float32 gradients are judged
# by relative L2 error, loosely; a wrong or racing conv is off by O(1).
NETWORK_TOLERANCE = {"output": 1e-4, "grad_feats": 5e-2}


def _rel_l2(got: torch.Tensor, want: torch.Tensor) -> dict:
  diff = got.detach().double() - want
  return {"rel_l2": float(diff.norm() / want.norm()), "max_abs": float(diff.abs().max())}


def _network_runs(net: nn.Module, coords, feats, cotangent):
  """(forward, forward_backward) closures: () -> output [N, 128] and
  () -> (output, d feats [N, F]) with loss = sum(output * cotangent)."""
  def forward():
    with torch.no_grad():
      return net(coords, feats)

  def forward_backward():
    net.zero_grad(set_to_none=True)
    f = feats.detach().requires_grad_()
    out = net(coords, f)
    (out * cotangent).sum().backward()
    return out.detach(), f.grad

  return forward, forward_backward


def _measure_network(net: nn.Module, coords, feats, cotangent, reference, repeats: int):
  """Timings and the worst relative error over every run against the float64 reference."""
  forward, forward_backward = _network_runs(net, coords, feats, cotangent)
  errors = {"output": [], "grad_feats": []}

  def check(result):
    out, d_feats = result if isinstance(result, tuple) else (result, None)
    errors["output"].append(_rel_l2(out, reference[0]))
    if d_feats is not None:
      errors["grad_feats"].append(_rel_l2(d_feats, reference[1]))

  timing = {"forward_s": _round(_median_time(forward, repeats, check)),
            "forward_backward_s": _round(_median_time(forward_backward, repeats, check))}
  worst = {k: max(v, key=lambda e: e["rel_l2"]) for k, v in errors.items()}
  correct = all(worst[k]["rel_l2"] <= NETWORK_TOLERANCE[k] for k in worst)
  row = {"params": sum(p.numel() for p in net.parameters()),
         "max_abs_err": {k: e["max_abs"] for k, e in worst.items()}, "vs_float64": worst,
         "checked_runs": len(errors["output"]), "correct": correct}
  row.update(timing if correct else {"forward_s": None, "forward_backward_s": None,
                                     "timing_of_wrong_output": timing})
  print(f"[peer_bench] res16fpn18: {row}", file=sys.stderr, flush=True)
  return row


def network_case(coords: np.ndarray, feats: np.ndarray, cotangent: np.ndarray, repeats: int,
                 notes: list[str]) -> dict:
  """Res16FPN18 forward / forward+backward in both peers with the same weights, each checked
  against the torch network run in float64, and against each other (one run each)."""
  torch.manual_seed(0)
  coords_t = torch.from_numpy(coords.astype(np.int64))
  feats_t, cotangent_t = torch.from_numpy(feats), torch.from_numpy(cotangent)
  net = TorchRes16FPN18(feats.shape[1])
  _randomize_bn(net, 1)
  reference = _network_runs(copy.deepcopy(net).double(), coords_t, feats_t.double(),
                            cotangent_t.double())[1]()
  map_s = _median_time(lambda: _Pyramid(coords_t), repeats)
  row = {"voxels": len(coords), "level_voxels": [len(c) for c in _Pyramid(coords_t).coords],
         "kernel_map_s": _round(map_s), "tolerance_rel_l2": NETWORK_TOLERANCE}
  peers = {"torch_gather_scatter": net}
  if spconv_torch is None:
    row["spconv"] = {"unavailable": SPCONV_ERROR}
  else:
    peers["spconv"] = SpconvRes16FPN18(feats.shape[1])
    copy_torch_to_spconv(net, peers["spconv"])
  for name, peer in peers.items():
    row[name] = _measure_network(peer, coords_t, feats_t, cotangent_t, reference, repeats)
    if not row[name]["correct"]:
      notes.append(f"res16fpn18: {name} is WRONG at {torch.get_num_threads()} threads: "
                   f"{row[name]['vs_float64']}")
  if len(peers) == 2:
    runs = [_network_runs(p, coords_t, feats_t, cotangent_t)[1]() for p in peers.values()]
    row["spconv_vs_torch"] = {"output": _rel_l2(runs[1][0], runs[0][0].double()),
                              "grad_feats": _rel_l2(runs[1][1], runs[0][1].double())}
  return row


# ---------------------------------------------------------------------------------------------
# Inputs, self-check and main


def voxelize_scene(path: str, voxel_size: float) -> np.ndarray:
  """Unique voxel indices int32 [N, 3] (shifted to 0) of a float32 (N, 6) xyz-rgb .bin."""
  points = np.fromfile(path, np.float32).reshape(-1, 6)
  coords = np.unique(np.floor(points[:, :3] / voxel_size).astype(np.int64), axis=0)
  return (coords - coords.min(0)).astype(np.int32)


def make_case(coords: np.ndarray, channels=(32, 64), network: bool = True,
              seed: int = 0) -> dict:
  """The arrays of an input .npz: He-normal weights, normal feats and cotangents."""
  rng = np.random.default_rng(seed)
  n = len(coords)
  arrays = {"coords": coords.astype(np.int32)}
  for c in channels:
    name = f"subm3_{c}x{c}"
    arrays[f"feats_{name}"] = rng.normal(size=(n, c)).astype(np.float32)
    arrays[f"weight_{name}"] = (rng.normal(size=(27, c, c)) * np.sqrt(2 / (27 * c))).astype(
        np.float32)
    arrays[f"cotangent_{name}"] = rng.normal(size=(n, c)).astype(np.float32)
  if network:
    arrays["network"] = np.array("res16fpn18")
    arrays["network_feats"] = rng.normal(size=(n, 6)).astype(np.float32)
    arrays["network_cotangent"] = rng.normal(size=(n, NETWORK_OUT)).astype(np.float32)
  return arrays


def run_cases(data, repeats: int, threads: int) -> dict:
  """Every layer case of the npz (and the network when asked) -> the result JSON dict."""
  notes = []
  if spconv_torch is None:
    notes.append(f"spconv unavailable: {SPCONV_ERROR}")
  elif _patch_spconv_cpu_backward():
    notes.append("spconv: ops.get_current_stream patched to return 0 (CPU-only torch; the "
                 "native CPU backward otherwise asserts on torch.cuda)")
  if spconv_torch is not None and threads > 1:
    notes.append("spconv's CPU scatter-add races with more than one OpenMP thread "
                 "(traveller59/spconv#679); its comparable figure is the --threads 1 run")
  coords = np.asarray(data["coords"])
  load_at_start = os.getloadavg()[0]
  cases = {}
  for key in sorted(k for k in data.keys() if k.startswith("weight_")):
    name = key[len("weight_"):]
    weight = np.asarray(data[key], np.float32)
    feats = np.asarray(data[f"feats_{name}"], np.float32)
    cotangent = _cotangent(data, name, (len(coords), weight.shape[2]), seed=len(cases))
    cases[name] = layer_case(coords, feats, weight, cotangent, repeats, notes)
    print(f"[peer_bench] {name}: {json.dumps(cases[name])}", file=sys.stderr, flush=True)
  if "network" in data and str(data["network"]) == "res16fpn18":
    n = len(coords)
    rng = np.random.default_rng(1234)
    feats = (np.asarray(data["network_feats"], np.float32) if "network_feats" in data
             else rng.normal(size=(n, 6)).astype(np.float32))
    cotangent = (np.asarray(data["network_cotangent"], np.float32)
                 if "network_cotangent" in data
                 else rng.normal(size=(n, NETWORK_OUT)).astype(np.float32))
    cases["res16fpn18"] = network_case(coords, feats, cotangent, repeats, notes)
  return {"threads": threads, "torch": torch.__version__,
          "spconv": None if spconv is None else spconv.__version__, "repeats": repeats,
          "cpus": os.cpu_count(), "load_average_1m": [load_at_start, os.getloadavg()[0]],
          "cases": cases, "notes": notes}


def _brute_force_trilinear(fine: np.ndarray, coarse: np.ndarray, stride: int) -> np.ndarray:
  """Dense [N, M] interpolation weights by the documented formula, one voxel at a time."""
  rows = {tuple(c): i for i, c in enumerate(coarse)}
  dense = np.zeros((len(fine), len(coarse)))
  for i, q in enumerate(fine):
    base, frac = q // stride, (q % stride) / stride
    for o in np.ndindex(2, 2, 2):
      row = rows.get(tuple(base + o))
      if row is not None:
        dense[i, row] += np.prod(np.where(np.array(o) == 1, frac, 1 - frac))
  return dense


def self_check() -> None:
  """Tiny random voxels: the reference, plain torch and spconv agree (layer and network), and
  the interpolation tables match a brute-force loop. Raises AssertionError otherwise. With
  --threads > 1 spconv's result is printed, not asserted (its known scatter-add race)."""
  rng = np.random.default_rng(0)
  coords = np.unique(rng.integers(0, 40, size=(3000, 3)), axis=0).astype(np.int32)
  result = run_cases(make_case(coords, channels=(8,), network=True), repeats=1,
                     threads=torch.get_num_threads())
  layer, network = result["cases"]["subm3_8x8"], result["cases"]["res16fpn18"]
  assert layer["torch_gather_scatter"]["correct"], layer
  assert network["torch_gather_scatter"]["correct"], network
  fine = torch.from_numpy(coords.astype(np.int64))
  for stride in (2, 4):
    coarse = torch.unique(torch.div(fine, stride, rounding_mode="floor"), dim=0)
    voxels, corners, weights = trilinear_table(fine, coarse, stride)
    dense = np.zeros((len(fine), len(coarse)))
    np.add.at(dense, (voxels.numpy(), corners.numpy()), weights.numpy())
    brute = _brute_force_trilinear(coords.astype(np.int64), coarse.numpy(), stride)
    assert np.abs(dense - brute).max() < 1e-6, f"trilinear table wrong at stride {stride}"
  spconv_status = "unavailable"
  if spconv_torch is not None and torch.get_num_threads() > 1:
    # Its CPU scatter-add races with more than one thread: reported, not asserted.
    ok = layer["spconv"]["correct"] and network["spconv"]["correct"]
    spconv_status = (f"{'correct' if ok else 'WRONG'} at {torch.get_num_threads()} threads, "
                     "not asserted: traveller59/spconv#679")
  elif spconv_torch is not None:
    assert layer["spconv"]["correct"], layer
    assert network["spconv"]["correct"], network
    agreement = network["spconv_vs_torch"]
    assert all(agreement[k]["rel_l2"] <= NETWORK_TOLERANCE[k] for k in agreement), agreement
    spconv_status = "checked"
  print(json.dumps(result, indent=1))
  print(f"[peer_bench] self-check passed ({len(coords)} voxels; spconv {spconv_status})")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--input", help="case .npz (see the module docstring)")
  parser.add_argument("--out", help="result .json (with --make-case: the .npz to write)")
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--self-check", action="store_true")
  parser.add_argument("--make-case", metavar="SCENE_BIN",
                      help="write a case .npz from a float32 (N, 6) xyz-rgb scan to --out")
  parser.add_argument("--voxel-size", type=float, default=0.02)
  parser.add_argument("--network", action="store_true", help="with --make-case: add res16fpn18")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  if args.self_check:
    self_check()
  elif args.make_case:
    coords = voxelize_scene(args.make_case, args.voxel_size)
    np.savez(args.out, **make_case(coords, network=args.network))
    print(f"[peer_bench] wrote {args.out}: {len(coords)} voxels")
  else:
    if not (args.input and args.out):
      parser.error("--input and --out are required")
    result = run_cases(np.load(args.input), args.repeats, args.threads)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
