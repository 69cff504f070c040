"""From ragged packed batches to padded device batches, one step ahead of the consumer.

  loader = DeviceLoader(stream, policy, spec, mesh, fields=("voxel_feats", ...))
  for host, device in loader:        # host: padded numpy batch; device: its `fields` as
    ...                              # global jax.Arrays sharded over the mesh's data axis
  loader.close()

A background thread takes each list of packs from the grain stream, asks the capacity policy
for its signature, pads the packs (`packing.pad_packs`) and places the requested fields on the
devices, so the next batch's padding and transfer overlap the current step. It reads
`lookahead` batches ahead of the one it places and shows the policy their needs, so that a new
signature can be made large enough for them too (`capacity.CapacityPolicy.choose`). With
several JAX processes the policy's choice is a collective (every process must pad to the same
shapes), so it then runs in the consumer's thread, in the same order on every process.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from typing import Any, Iterable, Iterator, Sequence

import jax
import numpy as np

from jaxseg.data import packing
from jaxseg.data.capacity import CapacityPolicy
from jaxseg.data.sharding import to_global_arrays
from jaxseg.ops.sparse.geometry import GeometrySpec

_DONE = object()


class DeviceLoader:
  """Iterates (host batch, device batch) pairs; see the module docstring.

  Args:
    stream: iterable of lists of `packing.Pack` (`pipeline.make_iterator`).
    policy: the capacity policy choosing each batch's signature.
    spec: the geometry spec the packs were built for.
    mesh: the device mesh; the pack axis is split over its data axis.
    fields: batch fields to place on the devices (None: every field).
    prefetch: batches prepared ahead.
    lookahead: batches read from the stream beyond the one being prepared, whose needs the
      policy sees.
  """

  def __init__(self, stream: Iterable[Sequence[packing.Pack]], policy: CapacityPolicy,
               spec: GeometrySpec, mesh: jax.sharding.Mesh,
               fields: Sequence[str] | None = None, prefetch: int = 2, lookahead: int = 2):
    self._stream, self._policy, self._spec, self._mesh = stream, policy, spec, mesh
    if lookahead < 0:
      raise ValueError(f"lookahead must be >= 0, got {lookahead}")
    self._lookahead = int(lookahead)
    self._fields = None if fields is None else tuple(fields)
    self._collective = jax.process_count() > 1
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, daemon=True)
    self._thread.start()

  def _place(self, packs: Sequence[packing.Pack], needs: dict[str, int],
             upcoming: list[dict[str, int]]) -> tuple[dict, dict]:
    signature = self._policy.choose(needs, upcoming)
    host = packing.pad_packs(packs, signature, self._spec)
    names = host if self._fields is None else [f for f in self._fields if f in host]
    return host, to_global_arrays({k: host[k] for k in names}, self._mesh)

  def _batches(self) -> Iterator[tuple[Sequence[packing.Pack], dict[str, int],
                                       list[dict[str, int]]]]:
    """(packs, their needs, the needs of up to `lookahead` batches after them) per batch."""
    window: collections.deque = collections.deque()
    stream = iter(self._stream)
    while True:
      for packs in itertools.islice(stream, self._lookahead + 1 - len(window)):
        window.append((packs, packing.batch_needs(packs)))
      if not window:
        return
      packs, needs = window.popleft()
      yield packs, needs, [later for _, later in window]

  def _produce(self) -> None:
    try:
      for batch in self._batches():
        item = batch if self._collective else self._place(*batch)
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
      self._queue.put(_DONE)
    except BaseException as error:  # pylint: disable=broad-except  (re-raised by the consumer)
      self._queue.put(error)

  def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    while True:
      item = self._queue.get()
      if item is _DONE:
        return
      if isinstance(item, BaseException):
        raise item
      yield self._place(*item) if self._collective else item

  def close(self) -> None:
    """Stops the background thread (unconsumed batches are dropped)."""
    self._stop.set()
    while self._thread.is_alive():
      try:
        self._queue.get(timeout=0.1)
      except queue.Empty:
        pass

  def __enter__(self) -> "DeviceLoader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
