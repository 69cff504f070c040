"""BatchNorm statistics for evaluation: the running averages, or recalibrated on a split.

A network evaluates with its BatchNorm layers' running averages (`eval.batch_norm='running'`,
PyTorch's `model.eval()`, what every reference does). With the reference's momentum (0.02 in
PyTorch terms) those averages still hold 0.98^n of their initial (0, 1) after n steps: 55%
after a 30-step run, so a short run is evaluated with statistics that are mostly not its
own. `eval.batch_norm='recalibrate'` replaces them, before evaluation, by the population
statistics of the training split ("precise BatchNorm", Wu & Johnson 2021): one ordered pass
with every layer normalising by its batch's moments, as in training, pooled over the batches
per layer:
  mean = sum_b n_b m_b / N,   var = sum_b n_b (v_b + m_b^2) / N - mean^2
(n_b valid rows, m_b and v_b the batch's mean and biased variance). Only the statistics
change; the parameters are the run's. A network without BatchNorm (DGCNN's LayerNorm) is
returned unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping

import flax
import jax
import numpy as np

from jaxseg.logging_utils import get_logger, progress
from jaxseg.models.voxel_net import VoxelNet
from jaxseg.ops.sparse.norm import MOMENTS
from jaxseg.train.context import RunContext

_LOG = get_logger("eval.batch_norm")
MODES = ("running", "recalibrate")


def provenance(mode: str) -> dict[str, str]:
  """What a run report says of the BatchNorm statistics `mode` evaluated with: nothing for
  the references' 'running'."""
  if mode == "running":
    return {}
  return {"batch_norm": "BatchNorm statistics recalibrated on the training split "
                        f"(eval.batch_norm={mode!r})"}


@functools.partial(jax.jit, static_argnames=("net",))
def _batch_moments(variables, batch, *, net: VoxelNet):
  """{layer path: (count [1], mean [F], var [F])} of one batch in training mode."""
  _, state = net.apply(variables, batch, train=True, mutable=["batch_stats", MOMENTS])
  return state.get(MOMENTS, {})


def pooled_statistics(batch_moments: Iterable[Mapping[str, Any]]) -> dict[tuple, tuple]:
  """Pools per-batch moments (each a `MOMENTS` collection: per layer a one-element tuple of
  (count [1], mean [F], var [F])) into {layer path: (mean f32 [F], var f32 [F])}, in float64
  (module docstring)."""
  sums: dict[tuple, list] = {}
  for moments in batch_moments:
    for path, value in flax.traverse_util.flatten_dict(flax.core.unfreeze(moments)).items():
      (count, mean, var), = value
      count = float(np.asarray(count).reshape(-1)[0])
      mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
      total = sums.setdefault(path[:-1], [0.0, 0.0, 0.0])
      total[0] += count
      total[1] = total[1] + count * mean
      total[2] = total[2] + count * (var + mean ** 2)
  stats = {}
  for layer, (count, first, second) in sums.items():
    mean = first / count
    stats[layer] = (mean.astype(np.float32),
                    np.maximum(second / count - mean ** 2, 0.0).astype(np.float32))
  return stats


def with_statistics(variables: Mapping[str, Any], stats: Mapping[tuple, tuple]
                    ) -> dict[str, Any]:
  """`variables` with each layer's running mean and var replaced by `stats` (paths as
  `pooled_statistics` gives them); a layer missing from `batch_stats` is an error."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["batch_stats"]))
  for layer, (mean, var) in stats.items():
    if layer + ("mean",) not in flat:
      raise KeyError(f"BatchNorm layer {'/'.join(layer)} has no running statistics")
    flat[layer + ("mean",)], flat[layer + ("var",)] = mean, var
  return {**variables, "batch_stats": flax.traverse_util.unflatten_dict(flat)}


def recalibrated(moments_of: Callable[[Any], Mapping[str, Any]], variables: Mapping[str, Any],
                 batches: Iterable[Any]) -> dict[str, Any]:
  """`variables` with the statistics pooled over `batches` (`moments_of(batch)` returns a
  batch's `MOMENTS` collection)."""
  return with_statistics(variables, pooled_statistics(moments_of(b) for b in batches))


def for_evaluation(ctx: RunContext, variables: Mapping[str, Any]) -> Mapping[str, Any]:
  """The encoder variables evaluation uses, as `eval.batch_norm` asks (module docstring)."""
  mode = ctx.config.eval.batch_norm
  if mode == "running" or not variables.get("batch_stats"):
    return variables
  split, net = ctx.config.data.train_split, ctx.net()
  with ctx.data.loader(split, train=False, seed=0, fields=ctx.net_fields) as loader:
    batches = progress((device for _, device in loader),
                       desc=f"recalibrating BatchNorm ({split})",
                       total=ctx.data.eval_batches(split))
    result = recalibrated(lambda b: _batch_moments(variables, b, net=net), variables, batches)
  _LOG.info("BatchNorm statistics recalibrated on %s (eval.batch_norm='recalibrate')", split)
  return result
