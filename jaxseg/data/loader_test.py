"""The device loader: batches in stream order, padded to the policy's choice, which sees the
needs of the batches waiting behind each one."""

import jax
import numpy as np
import pytest

from jaxseg.data import capacity
from jaxseg.data import packing
from jaxseg.data.loader import DeviceLoader
from jaxseg.data.pipeline import PipelineConfig, make_iterator
from jaxseg.data.sharding import data_mesh

_CONFIG = PipelineConfig(voxel_size=0.25, batch_size=2)


class _RecordingPolicy(capacity.CapacityPolicy):

  def __init__(self):
    super().__init__()
    self.calls = []

  def choose(self, needs, upcoming=()):
    self.calls.append((dict(needs), [dict(u) for u in upcoming]))
    return super().choose(needs, upcoming)


@pytest.mark.parametrize("lookahead", [0, 2])
def test_batches_keep_their_order_and_the_policy_sees_the_waiting_ones(lookahead,
                                                                      random_rooms):
  source = random_rooms([300, 280, 500, 520, 900, 950, 400, 380])
  stream = lambda: make_iterator(source, _CONFIG, seed=0, train=False, num_packs=1,
                                 process_index=0, process_count=1)
  needs = [packing.batch_needs(packs) for packs in stream()]
  policy = _RecordingPolicy()
  with DeviceLoader(stream(), policy, _CONFIG.geometry, data_mesh(jax.devices()[:1]),
                    fields=("voxel_feats",), lookahead=lookahead) as loader:
    out = list(loader)
  assert len(out) == len(needs) == 4
  assert [call[0] for call in policy.calls] == needs
  assert [call[1] for call in policy.calls] == [needs[i + 1:i + 1 + lookahead]
                                                for i in range(len(needs))]
  for (host, device), batch_needs in zip(out, needs):
    assert int(host["scene_index"][0, 0]) >= 0
    assert host["point_mask"].shape[1] >= batch_needs["points"]
    np.testing.assert_array_equal(np.asarray(device["voxel_feats"]), host["voxel_feats"])
  names = [int(host["scene_index"][0, 0]) for host, _ in out]
  assert names == sorted(names)
