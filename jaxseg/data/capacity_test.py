"""The capacity ladder and the signature policy."""

import numpy as np

from jaxseg.data import capacity


def test_ladder_steps_are_at_most_a_quarter_and_aligned():
  for name, multiple in (("points", 64), ("voxels3", 16), ("pairs0_k5_b2", 8)):
    rungs = capacity.rungs(name, 10 ** 7)
    ratios = np.divide(rungs[1:], rungs[:-1])
    assert np.all(np.asarray(rungs) % multiple == 0)
    big = np.asarray(rungs[:-1]) >= 4 * multiple      # Below: one multiple per step.
    assert ratios[big].max() <= 1.25 + 1e-9
    assert capacity.tight({name: 12345})[name] >= 12345


def test_policy_reuses_close_signatures_and_persists_them(tmp_path):
  path = str(tmp_path / "caps.json")
  policy = capacity.CapacityPolicy(slack_rungs=2, path=path)
  a = policy.choose({"points": 10_000, "voxels0": 5_000})
  assert a == capacity.tight({"points": 10_000, "voxels0": 5_000})
  b = policy.choose({"points": 9_000, "voxels0": 4_200})       # within 2 rungs: reused
  assert b == a and len(policy.signatures) == 1
  c = policy.choose({"points": 3_000, "voxels0": 4_000})       # points far smaller: new
  assert c["points"] < a["points"] and len(policy.signatures) == 2
  d = policy.choose({"points": 13_000, "voxels0": 5_000})      # does not fit: new
  assert d["points"] >= 13_000 and len(policy.signatures) == 3
  again = capacity.CapacityPolicy(slack_rungs=2, path=path)
  assert again.signatures == policy.signatures
  assert again.choose({"points": 9_500, "voxels0": 4_900}) == a
