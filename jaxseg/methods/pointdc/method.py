"""PointDC's training: distillation (unless `init` names a network or 'random'), then
super-voxel clustering; what the report says about it.

  config.init = ''          distil first (stage 1), in this work directory
  config.init = 'random'    no distillation: cluster from a randomly initialised network
  config.init = RUN         start from another run's network (e.g. a distillation-only run)
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections

from jaxseg.eval.report import ScalarWriter
from jaxseg.methods import TrainOutcome
from jaxseg.methods.pointdc import cluster, distill, losses
from jaxseg.methods.pointdc.pseudo_labels import MARGINALS
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.teachers import TEACHER_SPECS, teacher_description
from jaxseg.train import restore, trainer
from jaxseg.train.context import RunContext

# Checkpoint folders holding PointDC networks, the final one first.
NETWORK_PHASES = ("svc", "svc_warmup", "cmd")


def checkpoint_phases(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The phases a training run of `config` trains (those with epochs)."""
  phases = []
  if not config.init and config.cmd.epochs:
    phases.append("cmd")
  if config.svc.warmup_epochs:
    phases.append("svc_warmup")
  if config.svc.epochs:
    phases.append("svc")
  return tuple(phases)


def _choice(problems: list[str], key: str, value: Any, choices) -> None:
  if value not in choices:
    problems.append(f"unknown {key} {value!r}; choose one of {list(choices)}")


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the cmd and svc sections."""
  problems = []
  svc = config.svc
  _choice(problems, "cmd.loss", config.cmd.loss, losses.LOSSES)
  _choice(problems, "svc.assign", svc.assign, cluster.ASSIGNERS)
  _choice(problems, "svc.label_from", svc.label_from, cluster.LABEL_SOURCES)
  _choice(problems, "svc.warmup_head", svc.warmup_head, cluster.WARMUP_HEADS)
  _choice(problems, "svc.sinkhorn.marginal", svc.sinkhorn.marginal, MARGINALS)
  k = svc.num_clusters or config.data.num_classes
  if isinstance(k, int) and isinstance(config.data.num_classes, int) and (
      k < config.data.num_classes):
    problems.append(f"svc.num_clusters={k} is below data.num_classes="
                    f"{config.data.num_classes}; use 0 (= num_classes) or more (primitives)")
  spec = TEACHER_SPECS.get(config.teacher.name)
  distils = config.mode == "train" and not config.init and config.cmd.epochs
  if distils and spec and not config.teacher.checkpoint:
    problems.append(f"teacher.name {config.teacher.name!r} needs its pretrained checkpoint "
                    f"for distillation; download {spec.download} and pass "
                    "--config.teacher.checkpoint=<its path>, or use --config.teacher.name="
                    "fallback (no weights, much weaker) or --config.init=random (no "
                    "distillation)")
  return problems


def _start(ctx: RunContext, resume: bool, writer: ScalarWriter, validate, seconds):
  """(encoder variables, initialisation in words, provenance) before clustering."""
  init = ctx.config.init
  if init == "random":
    return ctx.init_variables(), "random init", {"init": "randomly initialised network"}
  if init:
    variables = restore.load_variables(init, NETWORK_PHASES)
    provenance = {"init": f"network of the run {init}"}
    teacher = restore.distilled_teacher(init)
    if teacher:
      provenance["teacher"] = f"{teacher} (distilled by that run)"
    return variables, "init from a run", provenance
  start = time.perf_counter()
  variables, targets = distill.run(ctx, resume, writer, validate)
  seconds["cmd"] = time.perf_counter() - start
  teacher = teacher_description(ctx.config.teacher.name, ctx.config.teacher.checkpoint)
  return variables, "distillation", {
      "init": "cross-modal distillation", "teacher": teacher,
      "distillation": f"{ctx.config.cmd.loss} loss, {ctx.config.cmd.epochs} epochs, {targets}"}


def train(ctx: RunContext, resume: bool, writer: ScalarWriter,
          validate: trainer.Validate | None = None) -> TrainOutcome:
  """Runs PointDC's phases; returns the encoder to evaluate and what ran."""
  svc, seconds = ctx.config.svc, {}
  variables, start_name, provenance = _start(ctx, resume, writer, validate, seconds)
  if svc.warmup_epochs or svc.epochs:
    start = time.perf_counter()
    variables = cluster.run(ctx, variables, resume, writer, validate)
    seconds["svc"] = time.perf_counter() - start
    name = f"PointDC: {start_name} + SVC ({svc.assign})"
    provenance = {**provenance, "clustering": (
        f"{svc.warmup_epochs} warm-up ({svc.warmup_head} head) + {svc.epochs} epochs, "
        f"K={cluster.num_clusters(ctx)}, {svc.assign} labels")}
  else:
    name = f"PointDC: {start_name} only (no clustering)"
  return TrainOutcome(encoder_variables(variables), name, provenance, seconds)
