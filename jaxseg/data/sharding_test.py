"""Process sharding and placement of host batches on the 4 virtual CPU devices."""

import jax
import numpy as np
import pytest

from jaxseg.data.sharding import (data_mesh, process_batch_size, process_share,
                                  to_global_arrays)
from jaxseg.errors import InputError


def test_process_batch_size():
  assert process_batch_size(8, process_count=2) == 4
  assert process_batch_size(8) == 8 // jax.process_count()
  with pytest.raises(InputError, match="not a positive multiple of the 3"):
    process_batch_size(8, process_count=3)


def test_processes_take_contiguous_shares_of_a_global_batch():
  full = np.arange(10, 16)
  assert [process_share(full, i, 3).tolist() for i in range(3)] == [[10, 11], [12, 13],
                                                                     [14, 15]]
  short = np.arange(4)     # a last batch of 4 of 6: the last process gets nothing.
  assert [process_share(short, i, 3).tolist() for i in range(3)] == [[0, 1], [2, 3], []]
  assert process_share(full, 0, 1).tolist() == full.tolist()   # one process reads all
  with pytest.raises(InputError, match="outside"):
    process_share(full, 3, 3)


def test_batch_of_four_lands_one_scene_per_device():
  assert jax.device_count() == 4
  mesh = data_mesh()
  rng = np.random.default_rng(0)
  batch = {"voxel_feats": rng.normal(size=(4, 16, 6)).astype(np.float32),
           "voxel_mask": rng.random((4, 16)) < 0.5,
           "scene_index": np.arange(4, dtype=np.int32)}
  arrays = to_global_arrays(batch, mesh)
  for name, value in batch.items():
    array = arrays[name]
    assert array.shape == value.shape and array.dtype == value.dtype
    np.testing.assert_array_equal(np.asarray(array), value)
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
    assert len({s.device for s in shards}) == 4
    for i, shard in enumerate(shards):
      assert shard.data.shape == (1,) + value.shape[1:]
      np.testing.assert_array_equal(np.asarray(shard.data), value[i:i + 1])
  with pytest.raises(InputError, match="does not split over 4 local devices"):
    to_global_arrays({"x": np.zeros((6, 2))}, mesh)
