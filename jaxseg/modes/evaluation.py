"""Mode `eval`: evaluate a trained network, a random one, or raw super-voxel descriptors.

  eval.features='model', eval.checkpoint=''        the newest network of this work directory
                                                   (a method with a classifier head, e.g.
                                                   COARSE3D, is scored by that head)
  eval.features='model', eval.checkpoint=PATH      a run's work directory or checkpoint folder
                                                   (a method with primitives, e.g. GrowSP,
                                                   merges the run's saved primitives)
  eval.features='model', eval.checkpoint='random'  a randomly initialised network (baseline)
  eval.features='raw_descriptors'                  mean colour, xyz and normal (baseline)
"""

from __future__ import annotations

import time

import ml_collections

from jaxseg.eval import batch_norm, evaluate, supervised
from jaxseg.eval.run_report import begin_timings, write_run_report
from jaxseg.inference import bundle
from jaxseg.logging_utils import get_logger
from jaxseg.methods import get_method
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.train import restore
from jaxseg.train.context import RunContext

_LOG = get_logger("modes.evaluation")


# The model keys that make a run's network what it is: an evaluation of that network adopts
# them from the run's config (encoder, width, and its input features: the colour channels or
# not).
_NETWORK_KEYS = {"name": "res16fpn18", "out_dim": 128, "input_colors": True}


def _network_of_run(config: ml_collections.ConfigDict) -> None:
  """Evaluating another run's network: `model.name`, `model.out_dim` and
  `model.input_colors` as that run trained it."""
  run = restore.run_config(config.eval.checkpoint) if config.eval.checkpoint not in (
      "", "random") else None
  if run is None:
    return
  for key, default in _NETWORK_KEYS.items():
    trained = run.get("model", {}).get(key, default)
    if trained != config.model[key]:
      _LOG.info("the network of %s was trained with model.%s=%s; evaluating it so",
                config.eval.checkpoint, key, trained)
      config.model[key] = trained


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  del resume  # Evaluation keeps no state between runs.
  _network_of_run(config)
  ctx = RunContext.from_config(config, workdir)
  begin_timings(ctx)
  start, primitives = time.perf_counter(), None
  if config.eval.features == "raw_descriptors":
    name, variables = "K-means on raw super-voxel descriptors (no network)", None
    provenance = {"features": "raw super-voxel descriptors: mean colour, xyz and normal"}
  elif config.eval.checkpoint == "random":
    name, variables = "Randomly initialised network", ctx.init_variables()
    provenance = {"features": f"randomly initialised {config.model.name} (seed {config.seed})"}
  else:
    source = config.eval.checkpoint or workdir
    # Another run's network is read as its own method saved it (e.g. a SoftClu run evaluated
    # from the PointDC config of the same scans).
    method = get_method((config.eval.checkpoint and restore.run_method(source))
                        or config.method)
    name = f"{method.title} network of {source}"
    variables, arrays = restore.load_run(source, method.network_phases,
                                         arrays=method.primitives_key is not None)
    provenance = {"method": method.title, "features": f"network of the run {source}"}
    if method.supervised:         # scored by its classifier head
      results = {name: supervised.evaluate(ctx, variables)}
      write_run_report(ctx, results, {"eval": time.perf_counter() - start}, provenance)
      return
    variables = encoder_variables(variables)
    if method.primitives_key in arrays:
      primitives = arrays[method.primitives_key]
      provenance["clustering"] = f"the run's {len(primitives)} primitives merged"
  if variables is not None and config.eval.features == "model":
    variables = batch_norm.for_evaluation(ctx, variables)
    provenance.update(batch_norm.provenance(config.eval.batch_norm))
  results = {name: evaluate.evaluate(ctx, variables, config.eval.features,
                                     config.eval.linear_probe, primitives=primitives,
                                     final=True)}
  if variables is not None:
    bundle.export_run(workdir, config, variables)
  write_run_report(ctx, results, {"eval": time.perf_counter() - start}, provenance)
