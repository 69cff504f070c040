"""Splitting the input across JAX processes and placing host batches on a device mesh.

Each process reads every `process_count`-th record starting at its `process_index` and builds
batches of `global_batch_size / process_count` scenes; `to_global_arrays` then assembles the
per-process batches into global `jax.Array`s sharded over the mesh axis 'data'.
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


def process_records(num_records: int, train: bool, process_index: int,
                    process_count: int) -> np.ndarray:
  """This process's record indices: every `process_count`-th from `process_index`; training
  first drops the last num_records % process_count records so every process has as many
  (processes must step together); evaluation lets the first processes take one more."""
  if not 0 <= process_index < process_count:
    raise InputError("data sharding", f"process index {process_index} is outside "
                     f"[0, {process_count})", "pass process_index in [0, process_count)")
  usable = num_records - num_records % process_count if train else num_records
  return np.arange(process_index, usable, process_count)


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
