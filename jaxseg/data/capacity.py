"""Static capacities for jit: a fine ladder of sizes and a policy that reuses compiled shapes.

Every ragged quantity of a packed batch (points, super-voxels and voxels per level, the widths
of the pair-list bands per level and kernel and of the child bands per link, the voxels a
posed view can see; see
`jaxseg.data.packing.Pack.needs`) is padded to a rung of a ladder whose steps are at most
1.25x. Each distinct set of capacities (a signature) compiles the step once, so the policy
keeps their number small:
  * a batch reuses the cheapest signature that holds it whose estimated work is at most
    1.25^slack_rungs times the work of the batch's own tight signature (the capacities summed
    with per-quantity weights, e.g. the rows a band width stands for: `packing.need_weights`);
  * otherwise it gets a new signature: its tight one `headroom_rungs` rungs larger, grown to
    hold every earlier signature when that stays within the same bound, so that signatures
    soon cover the whole dataset and the next batches reuse them; then grown, one at a time
    and nearest first, to hold the batches already waiting behind it (the loader's
    look-ahead, `upcoming`) that no signature made so far serves, whenever the result stays
    within the bound of this batch and of every waiting batch it was grown for, so that those
    batches reuse it instead of compiling their own.
The default headroom (1 rung) is below the slack (2 rungs), so a new signature also serves the
batches somewhat smaller than the one that made it. With headroom equal to the slack, a new
signature sits at the reuse bound of its own batch and every smaller batch needs yet another:
replaying the batches of real runs through both policies (ScanNet mini set, 36 batches; the
demo, 20; the end-to-end test's rooms, 12), headroom 2 made 8 / 4 / 5 signatures at 1.44x /
1.33x / 1.43x the tight work, headroom 1 made 3 / 2 / 3 at 1.30x / 1.25x / 1.32x.
The look-ahead matters at the start of a phase, when the first batches meet an empty or
foreign history: in the end-to-end test's run (4 rooms, one batch an epoch) the second epoch's
augmentation made a second signature of the distillation step, one more 15-20 s compilation,
which the look-ahead of the loader folds into the first.
The signatures used are written to a JSON file in the work directory, so `--resume` and later
runs reuse them (and hit the persistent compilation cache; runs of several processes start
without that history). With several JAX processes, every process takes the maximum of all
processes' needs before choosing, so all of them pad to the same shapes.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

import jax
import numpy as np

from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger

_LOG = get_logger("data.capacity")

RATIO = 1.25

# (smallest rung, multiple) per kind of quantity; a need's kind is its name's prefix.
_LADDERS = {"points": (256, 64), "segments": (16, 16), "voxels": (16, 16), "pairs": (8, 8),
            "children": (8, 8), "view_points": (64, 64), "scene_voxels": (16, 16)}


def _ladder(name: str) -> tuple[int, int]:
  for prefix, ladder in _LADDERS.items():
    if name.startswith(prefix):
      return ladder
  raise KeyError(f"no capacity ladder for {name!r}; names start with one of {list(_LADDERS)}")


def rungs(name: str, up_to: int) -> list[int]:
  """The ladder of quantity `name` up to the first rung >= up_to (ascending)."""
  smallest, multiple = _ladder(name)
  out = [smallest]
  while out[-1] < up_to:   # Steps of 1.25x rounded down to the multiple, at least one multiple.
    out.append(max(out[-1] + multiple, int(out[-1] * RATIO) // multiple * multiple))
  return out


def rung_index(name: str, value: int) -> int:
  """Index of the smallest rung >= value."""
  return len(rungs(name, value)) - 1


def tight(needs: Mapping[str, int]) -> dict[str, int]:
  """Each need rounded up to its ladder: the smallest signature holding `needs`."""
  return {name: rungs(name, int(n))[-1] for name, n in needs.items()}


def work(signature: Mapping[str, int], weights: Mapping[str, float] | None = None) -> float:
  """Estimated work of a signature: its capacities times `weights` (default 1 each)."""
  weights = weights or {}
  return float(sum(v * weights.get(q, 1.0) for q, v in signature.items()))


class CapacityPolicy:
  """Chooses the capacities (signature) of each batch; see the module docstring.

  Args:
    slack_rungs: how many rungs above its tight rung a reused capacity may be.
    headroom_rungs: how many rungs above its tight rung a new signature is made
      (<= slack_rungs).
    path: JSON file that records the signatures used (read at start when it exists).
    name: what the batches are, for the log.
    weights: per-quantity weights of `work` (default 1 each).
  """

  def __init__(self, slack_rungs: int = 2, headroom_rungs: int = 1, path: str | None = None,
               name: str = "batch", weights: Mapping[str, float] | None = None):
    if not 0 <= headroom_rungs <= slack_rungs:
      raise ValueError(f"headroom_rungs {headroom_rungs} must lie in [0, {slack_rungs}]")
    self.slack_rungs, self.headroom_rungs = slack_rungs, headroom_rungs
    self.path, self.name, self.weights = path, name, dict(weights or {})
    self.signatures: list[dict[str, int]] = []
    # Several processes start from no history, so they all take the same decisions.
    if path and os.path.isfile(path) and jax.process_count() == 1:
      with open(path) as f:
        self.signatures = [dict(s) for s in json.load(f)["signatures"]]

  def choose(self, needs: Mapping[str, int],
             upcoming: Sequence[Mapping[str, int]] = ()) -> dict[str, int]:
    """The signature for a batch with these needs (the same on every JAX process).

    upcoming: the needs of the batches that follow it, nearest first, when already known;
      a new signature is grown to hold them where the reuse bound allows (module docstring).
    """
    needs, *upcoming = _global_needs([needs, *upcoming])
    cost = lambda s: work(s, self.weights)
    bound = self._bound(needs)
    fitting = self._reusable(needs)
    if fitting:
      return min(fitting, key=cost)
    signature = tight(needs)
    for _ in range(self.headroom_rungs):
      signature = {q: rungs(q, v + 1)[-1] for q, v in signature.items()}
    grown = dict(signature)
    for other in self.signatures:
      if set(other) == set(grown):
        grown = {q: max(v, other[q]) for q, v in grown.items()}
    if cost(grown) <= bound:
      signature = grown
    for later in upcoming:   # Each batch it is grown for must still be able to reuse it.
      if (set(later) == set(signature) and not _holds(signature, later) and
          not self._reusable(later)):
        later_tight, later_bound = tight(later), min(bound, self._bound(later))
        candidate = {q: max(v, later_tight[q]) for q, v in signature.items()}
        if cost(candidate) <= later_bound:
          signature, bound = candidate, later_bound
    self.signatures.append(signature)
    _LOG.info("%s capacity signature %d (%.0f%% of the work of the batch's tight one): %s",
              self.name, len(self.signatures), 100 * cost(signature) / cost(tight(needs)),
              ", ".join(f"{k} {v}" for k, v in signature.items()))
    if self.path and jax.process_index() == 0:
      atomic.write_json(self.path, {"signatures": self.signatures})
    return signature

  def _bound(self, needs: Mapping[str, int]) -> float:
    """The most work a signature serving a batch of these needs may have."""
    return work(tight(needs), self.weights) * RATIO ** self.slack_rungs

  def _reusable(self, needs: Mapping[str, int]) -> list[dict[str, int]]:
    """The signatures made so far that may serve a batch of these needs."""
    bound = self._bound(needs)
    return [s for s in self.signatures if set(s) == set(needs) and _holds(s, needs) and
            work(s, self.weights) <= bound]


def _holds(signature: Mapping[str, int], needs: Mapping[str, int]) -> bool:
  return all(signature[q] >= n for q, n in needs.items())


def _global_needs(batches: Sequence[Mapping[str, int]]) -> list[dict[str, int]]:
  """Per batch, the element-wise maximum of every process's needs (the needs themselves on
  one process). Every process passes the same number of batches with the same names."""
  names = [sorted(needs) for needs in batches]
  local = [[int(needs[q]) for q in keys] for needs, keys in zip(batches, names)]
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    flat = np.asarray([v for row in local for v in row], np.int64)
    gathered = np.asarray(multihost_utils.process_allgather(flat))
    flat = gathered.reshape(-1, flat.size).max(axis=0)
    ends = np.cumsum([len(row) for row in local])
    local = [flat[end - len(row):end].tolist() for row, end in zip(local, ends)]
  return [dict(zip(keys, (int(v) for v in row))) for keys, row in zip(names, local)]
