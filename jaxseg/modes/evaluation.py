"""Mode `eval`: evaluate a trained network, a random one, or raw super-voxel descriptors.

  eval.features='model', eval.checkpoint=''        newest SVC checkpoint of this work directory
  eval.features='model', eval.checkpoint=PATH      a run's work directory or checkpoint folder
  eval.features='model', eval.checkpoint='random'  a randomly initialised network (baseline)
  eval.features='raw_descriptors'                  mean colour, xyz and normal (baseline)
"""

from __future__ import annotations

import time

import ml_collections

from jaxseg.stages import evaluate
from jaxseg.stages.context import RunContext
from jaxseg.stages.report import write_run_report
from jaxseg.stages.restore import load_variables


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  del resume  # Evaluation keeps no state between runs.
  ctx = RunContext.from_config(config, workdir)
  start = time.perf_counter()
  if config.eval.features == "raw_descriptors":
    name, variables = "K-means on raw super-voxel descriptors", None
  elif config.eval.checkpoint == "random":
    name, variables = "Randomly initialised network", ctx.init_variables()
  else:
    name = "PointDC features"
    variables = load_variables(config.eval.checkpoint or workdir, ("svc", "svc_warmup", "cmd"))
  results = {name: evaluate.evaluate(ctx, variables, config.eval.features,
                                     config.eval.linear_probe)}
  write_run_report(ctx, results, {"eval": time.perf_counter() - start})
