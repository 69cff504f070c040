"""Forward passes over a split that reduce on the devices and return small host arrays.

Point features never leave the devices: one jitted function reduces a batch to everything the
stages need from a split (per-super-voxel features, point counts and labelled counts, the
pooled Eq. 9-10 pseudo-labels for given centroids, and the features of chosen points for the
linear probe), so the clustering rounds and the evaluation's pass over the training split run
one compiled program per batch signature. It lives at module level with the network as a
static argument, so every pass of a run reuses its compilations.

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

from jaxseg import distributed
from jaxseg.errors import InputError
from jaxseg.eval.descriptors import raw_point_descriptors
from jaxseg.logging_utils import progress
from jaxseg.models.voxel_net import VoxelNet
from jaxseg.ops import pooling
from jaxseg.train.context import RunContext
from jaxseg.ops.features import l2_normalize, supervoxel_features
from jaxseg.methods.pointdc.pseudo_labels import pooled_pseudo_labels

FEATURE_KINDS = ("model", "raw_descriptors")
RAW_DIM = 9   # raw_point_descriptors' channels
RAW_FIELDS = ("point_coords", "point_colors", "point_normals", "point_mask", "point_scene",
              "scene_index")
_SCENE_FIELDS = ("point_segments", "point_labels", "point_mask", "segment_scene")
_ROW_FIELDS = ("scene_index", "scene_segment_offset", "scene_num_segments")  # `scene_rows`


def point_features(kind: str, net: VoxelNet | None, variables, batch) -> jax.Array:
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


def feature_net(ctx: RunContext, kind: str) -> VoxelNet | None:
  """The network of `point_features(kind, ...)` (None for raw descriptors)."""
  return ctx.net() if kind == "model" else None


@dataclasses.dataclass
class SceneTable:
  """Per-super-voxel values of every record of a split, flat, and the probe's points.

  offsets: int64 [N + 1]; feats f32 [M, D] unit rows (zeros for empty super-voxels);
  counts f32 [M] points; labelled f32 [M] points with a ground-truth label; pooled int32 [M]
  the pooled Eq. 9-10 labels for the pass's centroids (-1 empty); probe_feats f32 [R, D] and
  probe_labels int [R], the chosen labelled points' unit features and labels (R = 0 unless
  asked for).
  """
  offsets: np.ndarray
  feats: np.ndarray
  counts: np.ndarray
  labelled: np.ndarray
  pooled: np.ndarray
  probe_feats: np.ndarray
  probe_labels: np.ndarray


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


@functools.partial(jax.jit, static_argnames=("kind", "net", "temperature"))
def _scene_reduce(variables, centroids, batch, probe_rows, *, kind, net, temperature):
  """One batch -> (sv feats [G, S, D], counts [G, S], labelled [G, S], pooled labels [G, S],
  probe features [G, R, D], probe labels [G, R])."""
  feats = point_features(kind, net, variables, batch)
  num_segments = batch["segment_scene"].shape[1]
  sv = supervoxel_features(feats, batch["point_segments"], batch["point_mask"], num_segments,
                           sorted_ids=True)
  ids = jnp.where(batch["point_mask"] & (batch["point_labels"] >= 0), batch["point_segments"],
                  -1)     # Not sorted any more (unlabelled points drop out as -1).
  labelled = pooling.segment_counts(ids, num_segments).astype(jnp.float32)
  pooled = pooled_pseudo_labels(feats, batch["point_segments"], batch["point_mask"], centroids,
                                temperature=temperature, segment_cap=num_segments,
                                sorted_ids=True).labels
  unit = l2_normalize(feats)   # The probe reads unit features, as the clustering does.
  probe = jax.vmap(lambda f, r: jnp.take(f, r, axis=0))(unit, probe_rows)
  probe_labels = jax.vmap(lambda y, r: jnp.take(y, r))(batch["point_labels"], probe_rows)
  return sv.feats, sv.counts, labelled, pooled, probe, probe_labels


def _probe_rows(host, per_scene: int, seed: int) -> list[np.ndarray]:
  """Per pack, up to `per_scene` labelled points of each scene, drawn by a generator seeded
  with (seed, record), so the choice does not depend on batching or process count."""
  chosen = [[] for _ in host["point_mask"]]
  if per_scene:
    for g, z, record, _, _ in scene_rows(host):
      rows = np.flatnonzero(host["point_mask"][g] & (host["point_scene"][g] == z) &
                            (host["point_labels"][g] >= 0))
      rng = np.random.default_rng([seed, record])
      chosen[g].append(np.sort(rng.choice(rows, min(per_scene, rows.size), replace=False)))
  return [np.concatenate(c) if c else np.zeros(0, np.int64) for c in chosen]


def clustered_rows(table: SceneTable, min_points: int, labelled_only: bool) -> np.ndarray:
  """Rows of the super-voxels that clustering sees (training and evaluation alike): int64 [R],
  those with at least max(1, min_points) points and, with labelled_only, a point with a
  ground-truth label (the reference uses ground truth only as this ignore mask)."""
  keep = table.counts >= max(1, int(min_points))
  if labelled_only:
    keep &= table.labelled > 0
  return np.flatnonzero(keep)


def scene_pass(ctx: RunContext, split: str, kind: str, variables, *,
               centroids: np.ndarray | None = None, temperature: float = 1.0,
               probe: bool = False, augment_seed: int | None = None) -> SceneTable:
  """One ordered pass over `split` with the point features of `kind`, never cropped;
  unaugmented, or augmented with data.augment seeded by `augment_seed`.

  centroids: f32 [K, D] for the pooled Eq. 9-10 labels (None: they are not wanted; zeros of
    the run's [K, D] keep the compiled program the same).
  probe: also return the features of eval.probe.points_per_scene labelled points per scene
    (a random choice seeded by config.seed and the record).
  With several processes each reads its share of the scenes and every process gets the whole
  table (`distributed.gather`).
  """
  net = feature_net(ctx, kind)
  fields = feature_fields(ctx, kind) + _SCENE_FIELDS
  per_scene_points = int(ctx.config.eval.probe.points_per_scene)
  if centroids is None:
    dim = int(ctx.config.model.out_dim) if kind == "model" else RAW_DIM
    centroids = np.zeros((int(ctx.config.svc.num_clusters or ctx.num_classes), dim),
                         np.float32)
  centroids = jnp.asarray(centroids, jnp.float32)
  per_scene, probe_feats, probe_labels = {}, [], []
  augment = augment_seed is not None
  with ctx.data.loader(split, train=False, seed=augment_seed or 0, fields=fields,
                       augment=augment) as loader:
    for host, device in progress(loader, desc=f"super-voxel features ({split})",
                                 total=ctx.data.eval_batches(split)):
      rows = _probe_rows(host, per_scene_points if probe else 0, int(ctx.config.seed))
      # A fixed width (every pass of a run, probe or not, runs the same program).
      width = host["scene_index"].shape[1] * per_scene_points
      padded = np.stack([np.pad(r, (0, width - len(r))) for r in rows]).astype(np.int32)
      outputs = _scene_reduce(variables, centroids, device,
                              ctx.data.to_device({"rows": padded})["rows"], kind=kind, net=net,
                              temperature=float(temperature))
      (feats, counts, labelled, pooled, probe_batch, probe_batch_labels), whole, lengths = (
          distributed.gather((outputs, {k: host[k] for k in _ROW_FIELDS},
                              np.asarray([len(r) for r in rows]))))
      for g, _, record, start, count in scene_rows(whole):
        span = slice(start, start + count)
        per_scene[record] = (feats[g, span], counts[g, span], labelled[g, span],
                             pooled[g, span])
      for g, length in enumerate(lengths.tolist()):
        probe_feats.append(probe_batch[g, :length])
        probe_labels.append(probe_batch_labels[g, :length])
  offsets, (feats, counts, labelled, pooled) = _flatten(per_scene,
                                                        len(ctx.data.source(split)))
  return SceneTable(offsets, feats, counts, labelled, pooled.astype(np.int32),
                    np.concatenate(probe_feats), np.concatenate(probe_labels))
