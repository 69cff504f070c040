"""Mode `cmd`: cross-modal distillation only (checkpoints in <workdir>/checkpoints/cmd)."""

from __future__ import annotations

import time

import ml_collections

from jaxseg.logging_utils import get_logger
from jaxseg.stages import cmd
from jaxseg.stages.context import RunContext
from jaxseg.stages.report import write_run_report

_LOG = get_logger("modes.cmd")


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  ctx = RunContext.from_config(config, workdir)
  start = time.perf_counter()
  cmd.run(ctx, resume)
  write_run_report(ctx, {}, {"cmd": time.perf_counter() - start})
  _LOG.info("CMD checkpoint: %s; start clustering from it with --config.mode=svc "
            "--config.svc.cmd_checkpoint=%s", ctx.path("checkpoints", "cmd", ""), workdir)
