"""Mode `svc`: CMD (unless svc.cmd_checkpoint names a finished one, or is 'none' to cluster
from a randomly initialised network), SVC, then evaluation."""

from __future__ import annotations

import time

import ml_collections

from jaxseg.stages import cmd, evaluate, svc
from jaxseg.stages.context import RunContext
from jaxseg.stages.report import write_run_report
from jaxseg.stages.restore import load_variables


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  ctx = RunContext.from_config(config, workdir)
  seconds = {}
  start = time.perf_counter()
  if config.svc.cmd_checkpoint == "none":
    variables = ctx.init_variables()
  elif config.svc.cmd_checkpoint:
    variables = load_variables(config.svc.cmd_checkpoint, ("cmd",))
  else:
    variables = cmd.run(ctx, resume)
    seconds["cmd"] = time.perf_counter() - start
  start = time.perf_counter()
  variables, _ = svc.run(ctx, variables, resume)
  seconds["svc"] = time.perf_counter() - start
  start = time.perf_counter()
  results = {f"PointDC SVC ({config.svc.assign})":
             evaluate.evaluate(ctx, variables, "model", config.eval.linear_probe)}
  seconds["eval"] = time.perf_counter() - start
  write_run_report(ctx, results, seconds)
