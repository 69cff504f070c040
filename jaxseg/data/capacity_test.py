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


def test_policy_reuses_close_signatures_grows_them_and_persists_them(tmp_path):
  path = str(tmp_path / "caps.json")
  policy = capacity.CapacityPolicy(slack_rungs=2, headroom_rungs=0, path=path)
  a = policy.choose({"points": 10_000, "voxels0": 5_000})
  assert a == capacity.tight({"points": 10_000, "voxels0": 5_000})
  b = policy.choose({"points": 9_000, "voxels0": 4_200})        # cheap enough: reused
  assert b == a and len(policy.signatures) == 1
  c = policy.choose({"points": 3_000, "voxels0": 1_000})        # much smaller: its own
  assert c == capacity.tight({"points": 3_000, "voxels0": 1_000}) and len(policy.signatures) == 2
  d = policy.choose({"points": 10_500, "voxels0": 6_100})       # exceeds a: grown over a
  assert d["voxels0"] >= 6_100 and d["points"] == a["points"] and len(policy.signatures) == 3
  assert policy.choose({"points": 12_000, "voxels0": 5_500}) == a     # cheapest that holds it
  assert policy.choose({"points": 11_000, "voxels0": 6_500}) == d and len(policy.signatures) == 3
  again = capacity.CapacityPolicy(slack_rungs=2, headroom_rungs=0, path=path)
  assert again.signatures == policy.signatures
  assert again.choose({"points": 9_500, "voxels0": 4_900}) == a
  weighted = capacity.CapacityPolicy(slack_rungs=1, headroom_rungs=0, weights={"voxels0": 50})
  weighted.choose({"points": 10_000, "voxels0": 5_000})
  # Twice the points cost little next to the heavy voxels: the grown signature is reused.
  assert len(weighted.signatures) == 1 or weighted.choose(
      {"points": 4_000, "voxels0": 5_000}) == weighted.signatures[0]


def test_headroom_makes_new_signatures_one_rung_larger():
  policy = capacity.CapacityPolicy(slack_rungs=2, headroom_rungs=1)
  needs = {"points": 10_000, "voxels0": 5_000}
  first = policy.choose(needs)
  tight = capacity.tight(needs)
  assert all(capacity.rung_index(q, first[q]) == capacity.rung_index(q, tight[q]) + 1
             for q in needs)
  assert policy.choose({"points": 12_500, "voxels0": 6_000}) == first   # fits the headroom
  assert len(policy.signatures) == 1


def test_default_signature_also_serves_somewhat_smaller_batches():
  """A new signature has headroom below the reuse bound: a batch about one rung smaller in
  every quantity reuses it instead of compiling another (with headroom = slack it would not)."""
  needs = {"points": 100_000, "voxels0": 50_000, "pairs0_k3_b0": 20_000}
  smaller = {q: int(n * 0.78) for q, n in needs.items()}
  policy = capacity.CapacityPolicy()
  first = policy.choose(needs)
  assert policy.choose(smaller) == first and len(policy.signatures) == 1
  at_bound = capacity.CapacityPolicy(slack_rungs=2, headroom_rungs=2)
  at_bound.choose(needs)
  at_bound.choose(smaller)
  assert len(at_bound.signatures) == 2


def test_new_signature_grows_to_hold_waiting_batches_within_the_bound():
  """A batch that would need its own signature after this one reuses this one's when the
  policy sees it waiting (look-ahead), as long as both batches stay within the reuse bound;
  a waiting batch far larger gets its own."""
  first = {"points": 10_000, "voxels0": 5_000}
  second = {"points": 15_500, "voxels0": 7_400}         # beyond first's headroom rung
  blind = capacity.CapacityPolicy()
  blind.choose(first)
  blind.choose(second)
  assert len(blind.signatures) == 2
  seeing = capacity.CapacityPolicy()
  chosen = seeing.choose(first, upcoming=[second])
  assert all(chosen[q] >= n for q, n in second.items())
  assert seeing.choose(second) == chosen and len(seeing.signatures) == 1
  cost = lambda s: capacity.work(s)
  assert cost(chosen) <= cost(capacity.tight(first)) * capacity.RATIO ** 2

  huge = {"points": 40_000, "voxels0": 20_000}
  policy = capacity.CapacityPolicy()
  assert policy.choose(first, upcoming=[huge, second]) == chosen   # skips the huge one only
  assert policy.choose(huge) != chosen and len(policy.signatures) == 2


def test_waiting_batch_served_by_an_earlier_signature_does_not_grow_the_new_one():
  small, big = {"points": 4_000, "voxels0": 2_000}, {"points": 10_000, "voxels0": 5_000}
  policy = capacity.CapacityPolicy()
  made = policy.choose(small)
  second = policy.choose(big, upcoming=[{"points": 4_500, "voxels0": 2_100}])
  assert second == capacity.CapacityPolicy().choose(big)       # not grown for the small one
  assert policy.choose({"points": 4_500, "voxels0": 2_100}) == made


def test_growing_for_a_second_waiting_batch_never_locks_out_the_first():
  """Grown for b, then for c only if b can still reuse the result (found by a reviewer's
  random replays: growing for c pushed the signature past b's bound, and b made its own)."""
  a, b = {"points": 11_969, "voxels0": 3_322}, {"points": 9_012, "voxels0": 5_251}
  c = {"points": 17_048, "voxels0": 5_809}
  policy = capacity.CapacityPolicy()
  chosen = policy.choose(a, upcoming=[b, c])
  assert policy.choose(b) == chosen and len(policy.signatures) == 1
