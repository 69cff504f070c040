"""Mode `train`: the phases of `config.method` on the one trainer, then evaluation of the
network it returns (unless eval.after_training is off: clustering for unsupervised methods,
supervised segmentation for methods with a classifier head), and the run report."""

from __future__ import annotations

import time

import ml_collections

from jaxseg.eval import batch_norm, evaluate, supervised
from jaxseg.eval.report import ScalarWriter
from jaxseg.eval.run_report import begin_timings, write_run_report
from jaxseg.inference import bundle
from jaxseg.methods import get_method
from jaxseg.train.context import RunContext


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  ctx = RunContext.from_config(config, workdir)
  begin_timings(ctx, resume)
  method = get_method(config.method)
  scalars = supervised.validation_scalars if method.supervised else evaluate.validation_scalars
  validate = ((lambda variables: scalars(ctx, variables)) if config.eval.every_epochs else None)
  with ScalarWriter(ctx.path("tensorboard", "")) as writer:
    outcome = method.train(ctx, resume, writer, validate)
  seconds, results = dict(outcome.stage_seconds), {}
  if config.eval.after_training:
    start = time.perf_counter()
    if method.supervised:     # scored by its classifier head; no bundle (clustering models)
      results[outcome.name] = supervised.evaluate(ctx, outcome.variables)
    else:
      variables = batch_norm.for_evaluation(ctx, outcome.variables)
      results[outcome.name] = evaluate.evaluate(ctx, variables, "model",
                                                config.eval.linear_probe,
                                                primitives=outcome.primitives, final=True)
      bundle.export_run(workdir, config, variables)
    seconds["eval"] = time.perf_counter() - start
  provenance = {"method": method.title, **outcome.provenance}
  if config.eval.after_training and not method.supervised:
    provenance.update(batch_norm.provenance(config.eval.batch_norm))
  write_run_report(ctx, results, seconds, provenance, resumed=resume)
