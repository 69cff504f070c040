"""Forward passes over a split that reduce on the devices and return small host arrays.

Point features never leave the devices: each jitted pass reduces a batch to per-super-voxel
features, pseudo-labels or confusion counts before copying to the host. The jitted functions
live at module level with the network as a static argument, so every pass of a run (each
clustering round, each evaluation) reuses one compilation per batch signature.

Per-super-voxel results of a split are flat: scene i's super-voxels are rows
offsets[i]:offsets[i + 1] (`SupervoxelTable`), so padding slots never reach clustering.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import InputError
from jaxseg.eval.descriptors import raw_point_descriptors
from jaxseg.logging_utils import progress
from jaxseg.models.pointdc import PointDCNet
from jaxseg.ops import pooling
from jaxseg.stages.context import RunContext
from jaxseg.svc.features import supervoxel_features
from jaxseg.svc.pseudo_labels import pooled_pseudo_labels

FEATURE_KINDS = ("model", "raw_descriptors")
RAW_FIELDS = ("point_coords", "point_colors", "point_normals", "point_mask", "point_scene",
              "scene_index")


def point_features(kind: str, net: PointDCNet | None, variables, batch) -> jax.Array:
  """Point features f32 [G, P, D] of a device batch (inside jit).

  'model': the network's per-point features in evaluation mode; 'raw_descriptors': colour,
  scene-centred xyz and normal per point (the no-learning baseline; variables unused).
  """
  if kind == "model":
    return net.apply(variables, batch, train=False)["features"]
  return raw_point_descriptors(batch["point_coords"], batch["point_colors"],
                               batch["point_normals"], batch["point_mask"],
                               batch["point_scene"], num_slots=batch["scene_index"].shape[1])


def feature_fields(ctx: RunContext, kind: str) -> tuple[str, ...]:
  """The batch fields `point_features(kind, ...)` reads."""
  if kind == "model":
    return ctx.net_fields
  if kind == "raw_descriptors":
    return RAW_FIELDS
  raise InputError("eval.features", f"unknown feature kind {kind!r}",
                   f"use one of {list(FEATURE_KINDS)}")


@dataclasses.dataclass
class SupervoxelTable:
  """Per-super-voxel values of every record of a split, flat.

  offsets: int64 [N + 1]; feats f32 [M, D] unit rows (zeros for empty super-voxels);
  counts f32 [M] points; labelled f32 [M] points with a ground-truth label.
  """
  offsets: np.ndarray
  feats: np.ndarray
  counts: np.ndarray
  labelled: np.ndarray


def scene_rows(host: Mapping[str, np.ndarray]):
  """(pack, slot, record index, first pack super-voxel, super-voxels) of every scene of a
  padded host batch."""
  for g, slots in enumerate(host["scene_index"]):
    for z, record in enumerate(slots.tolist()):
      if record >= 0:
        start = int(host["scene_segment_offset"][g, z])
        yield g, z, record, start, int(host["scene_num_segments"][g, z])


def _flatten(per_scene: dict[int, tuple[np.ndarray, ...]], num_records: int):
  """{record: arrays of its super-voxels} -> offsets [N + 1] and the concatenated arrays."""
  missing = sorted(set(range(num_records)) - set(per_scene))
  if missing:
    raise RuntimeError(f"the pass missed record(s) {missing[:5]}")
  sizes = [len(per_scene[i][0]) for i in range(num_records)]
  offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
  arrays = [np.concatenate([per_scene[i][k] for i in range(num_records)])
            for k in range(len(per_scene[0]))]
  return offsets, arrays


@functools.partial(jax.jit, static_argnames=("kind", "net"))
def _supervoxel_reduce(variables, batch, *, kind, net):
  feats = point_features(kind, net, variables, batch)
  num_segments = batch["segment_scene"].shape[1]
  sv = supervoxel_features(feats, batch["point_segments"], batch["point_mask"], num_segments,
                           sorted_ids=True)
  ids = jnp.where(batch["point_mask"] & (batch["point_labels"] >= 0), batch["point_segments"],
                  -1)     # Not sorted any more (unlabelled points drop out as -1).
  return sv.feats, sv.counts, pooling.segment_counts(ids, num_segments).astype(jnp.float32)


def supervoxel_pass(ctx: RunContext, split: str, kind: str, variables) -> SupervoxelTable:
  """Super-voxel features of every record of `split` (in order, unaugmented) from the point
  features of `kind`."""
  net = ctx.net() if kind == "model" else None
  fields = feature_fields(ctx, kind) + ("point_segments", "point_labels", "segment_scene")
  per_scene = {}
  with ctx.loader(split, train=False, seed=0, fields=fields) as loader:
    for host, device in _progress(ctx, loader, split, f"super-voxel features ({split})"):
      feats, counts, labelled = jax.device_get(
          _supervoxel_reduce(variables, device, kind=kind, net=net))
      for g, _, record, start, count in scene_rows(host):
        rows = slice(start, start + count)
        per_scene[record] = (feats[g, rows], counts[g, rows], labelled[g, rows])
  offsets, (feats, counts, labelled) = _flatten(per_scene, len(ctx.source(split)))
  return SupervoxelTable(offsets, feats, counts, labelled)


@functools.partial(jax.jit, static_argnames=("net", "temperature"))
def _pseudo_label_reduce(variables, centroids, batch, *, net, temperature):
  feats = net.apply(variables, batch, train=False)["features"]
  return pooled_pseudo_labels(feats, batch["point_segments"], batch["point_mask"], centroids,
                              temperature=temperature,
                              segment_cap=batch["segment_scene"].shape[1],
                              sorted_ids=True).labels


def pseudo_label_pass(ctx: RunContext, split: str, variables, centroids: np.ndarray, *,
                      temperature: float) -> np.ndarray:
  """Eq. 9-10 over `split`: int32 [M] super-voxel pseudo-labels, flat like SupervoxelTable
  (-1 for empty super-voxels)."""
  net = ctx.net()
  fields = ctx.net_fields + ("point_segments", "segment_scene")
  per_scene = {}
  centroids = jnp.asarray(centroids)
  with ctx.loader(split, train=False, seed=0, fields=fields) as loader:
    for host, device in _progress(ctx, loader, split, f"pseudo-labels ({split})"):
      labels = np.asarray(_pseudo_label_reduce(variables, centroids, device, net=net,
                                               temperature=temperature))
      for g, _, record, start, count in scene_rows(host):
        per_scene[record] = (labels[g, start:start + count],)
  _, (table,) = _flatten(per_scene, len(ctx.source(split)))
  return table.astype(np.int32)


def _progress(ctx: RunContext, loader, split: str, desc: str):
  return progress(loader, desc=desc, total=ctx.eval_batches(split))


def point_lookup(table: np.ndarray, offsets: np.ndarray, host: Mapping[str, np.ndarray]
                 ) -> np.ndarray:
  """Each point's value of a flat per-super-voxel table: [G, P] (-1 for padding points and
  points in no super-voxel)."""
  slot = np.maximum(host["point_scene"], 0)
  packs = np.arange(slot.shape[0])[:, None]
  record = host["scene_index"][packs, slot]
  local = host["point_segments"] - host["scene_segment_offset"][packs, slot]
  valid = host["point_mask"] & (host["point_segments"] >= 0) & (record >= 0)
  rows = np.where(valid, offsets[np.maximum(record, 0)] + local, 0)
  return np.where(valid, table[rows], -1)
