"""Splitting the input across JAX processes and placing host batches on a device mesh.

Every process computes the same global batch and reads its contiguous share of it,
`global_batch_size / process_count` scenes (`process_share`); `to_global_arrays` then assembles
the per-process batches into global `jax.Array`s sharded over the mesh axis 'data'.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxseg.errors import InputError

DATA_AXIS = "data"


def process_batch_size(global_batch_size: int, process_count: Optional[int] = None) -> int:
  """Per-process batch size; InputError unless the global batch divides evenly."""
  count = jax.process_count() if process_count is None else process_count
  if global_batch_size <= 0 or global_batch_size % count:
    raise InputError("data.batch_size", f"global batch size {global_batch_size} is not a "
                     f"positive multiple of the {count} JAX processes",
                     f"use a multiple of {count}")
  return global_batch_size // count


def process_share(positions: np.ndarray, process_index: int, process_count: int
                  ) -> np.ndarray:
  """This process's contiguous share of a global batch's `positions` [B]: process p takes
  positions[p * b:(p + 1) * b] with b = ceil(B / process_count), so the shares of a full batch
  are the per-process batches and a short last batch leaves the last processes fewer or none.
  """
  if not 0 <= process_index < process_count:
    raise InputError("data sharding", f"process index {process_index} is outside "
                     f"[0, {process_count})", "pass process_index in [0, process_count)")
  share = -(-len(positions) // process_count)
  return positions[process_index * share:(process_index + 1) * share]


def data_mesh(devices: Optional[Sequence[jax.Device]] = None, axis: str = DATA_AXIS) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices) with the named data-parallel axis."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), (axis,))


def to_global_arrays(batch: Mapping[str, np.ndarray], mesh: Mesh,
                     axis: str = DATA_AXIS) -> dict[str, jax.Array]:
  """Per-process numpy batch (leading axis = this process's scenes) -> global jax.Arrays whose
  leading axis is split over `mesh` axis `axis`; other axes are replicated.

  The per-process batch must be a multiple of this process's devices on that axis.
  """
  sharding = NamedSharding(mesh, PartitionSpec(axis))
  local_devices = len(sharding.addressable_devices)
  out = {}
  for name, value in batch.items():
    if value.shape[0] % local_devices:
      raise InputError("data.batch_size", f"the per-process batch of {value.shape[0]} scenes "
                       f"('{name}') does not split over {local_devices} local devices",
                       f"use a per-process batch size that is a multiple of {local_devices}")
    out[name] = jax.make_array_from_process_local_data(sharding, value)
  return out
