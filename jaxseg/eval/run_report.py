"""The end-of-run report: `<workdir>/report.json` and `report.md`, `timings.json` (seconds per
stage of this invocation, started when it begins, and the earlier invocations of the work
directory), TensorBoard scalars, and the headline table printed to the log."""

from __future__ import annotations

import collections
import datetime
import platform
import re
from typing import Any, Mapping

import jax

from jaxseg import distributed
from jaxseg.eval.report import ScalarWriter, write_report
from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger
from jaxseg.io.labels import class_names
from jaxseg.train.context import RunContext

_LOG = get_logger("eval.run_report")


def _methods(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """evaluate() outputs per method -> the report's {'methods': {m: {'variants': ...}}}."""
  methods = {}
  for name, result in results.items():
    variants = dict(result["variants"])
    if "linear_probe" in result:
      variants["linear_probe"] = result["linear_probe"]
    methods[name] = {"variants": variants, "seconds": result["seconds"],
                     "splits": result["splits"], "renders": result.get("renders", [])}
  return methods


_HISTORY_KEYS = ("earlier_invocations", "stage_seconds_all_invocations")


def _is_record(value: Any) -> bool:
  return isinstance(value, Mapping) and ("stage_seconds" in value or "started" in value)


def started_timings(previous: Any, mode: str, resumed: bool, started: str) -> dict[str, Any]:
  """timings.json's content while an invocation runs: {'mode', 'resumed', 'started' (UTC,
  ISO 8601), 'finished': False} and, when `previous` (the work directory's earlier
  timings.json, or None) is a record, 'earlier_invocations': its own earlier invocations and
  itself, oldest first. An invocation that never finishes (killed, crashed) stays in the
  history as such, and a `mode=eval` of a trained work directory keeps the training's times."""
  record = {"mode": mode, "resumed": resumed, "started": started, "finished": False}
  if not _is_record(previous):
    return record
  earlier = [*previous.get("earlier_invocations", []),
             {k: v for k, v in previous.items() if k not in _HISTORY_KEYS}]
  return {**record, "earlier_invocations": earlier}


def finished_timings(current: Mapping[str, Any], stage_seconds: Mapping[str, float],
                     compilations: Mapping[str, Any]) -> dict[str, Any]:
  """The running record `current` (`started_timings`) with this invocation's seconds per stage
  and XLA programs, marked finished. A resumed training also gets
  'stage_seconds_all_invocations': the sums over the training invocations of this run (back to
  the one that started it; unfinished ones recorded no seconds)."""
  record = {**current, "stage_seconds": dict(stage_seconds),
            "compilations": dict(compilations), "finished": True}
  if not (record.get("resumed") and record.get("mode") == "train"):
    return record
  chain = [record]
  for invocation in reversed(record.get("earlier_invocations", [])):
    if invocation.get("mode", "train") != "train":   # records before modes were kept: train
      continue
    chain.append(invocation)
    if invocation.get("resumed") is False:
      break
  totals = collections.Counter()
  for invocation in chain:
    totals.update(invocation.get("stage_seconds", {}))
  return {**record, "stage_seconds_all_invocations": dict(totals)}


def _utc_now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def begin_timings(ctx: RunContext, resumed: bool = False) -> None:
  """Records in timings.json that an invocation of `ctx.config.mode` started (the main
  process of a multi-process run); `write_run_report` completes it."""
  if distributed.is_main():
    path = ctx.path("timings.json")
    atomic.write_json(path, started_timings(atomic.read_json(path), ctx.config.mode,
                                            resumed, _utc_now()))


def write_run_report(ctx: RunContext, results: Mapping[str, Mapping[str, Any]],
                     stage_seconds: Mapping[str, float],
                     provenance: Mapping[str, str] | None = None,
                     resumed: bool = False) -> None:
  """Writes the report (when there are results; the main process of a multi-process run)
  and logs the metrics and stage times.

  provenance: what produced the evaluated features (method, initialisation, teacher only when
  distillation ran), copied into the report's meta after the encoder's name.
  resumed: this invocation continues an earlier one (--resume); timings.json then also sums
  the run's training invocations. It completes the record `begin_timings` started (or
  starts one)."""
  config = ctx.config
  compilations = ctx.compilations.summary()
  meta = {"config": ctx.path("config.json"), "stage_seconds": dict(stage_seconds),
          "compilations": compilations, "encoder": config.model.name,
          **dict(provenance or {}),
          "devices": [str(d) for d in jax.devices()], "platform": platform.platform(),
          "dataset_dir": ctx.data.handle.data_dir}
  for stage, seconds in stage_seconds.items():
    _LOG.info("stage %s took %.1f s", stage, seconds)
  _LOG.info("XLA programs: %d compiled (%.1f s), %d loaded from the persistent cache",
            compilations["compiled"], compilations["compile_seconds"],
            compilations["loaded_from_cache"])
  if not distributed.is_main():
    return                      # one process writes the run's report
  path = ctx.path("timings.json")
  current = atomic.read_json(path)
  if not (_is_record(current) and current.get("finished") is False):   # no begin_timings
    current = started_timings(current, ctx.config.mode, resumed, _utc_now())
  atomic.write_json(path, finished_timings(current, stage_seconds, compilations))
  if not results:
    return
  report = {"class_names": list(class_names(ctx.num_classes)), "methods": _methods(results),
            "meta": meta}
  json_path, md_path = write_report(ctx.workdir, "report", report,
                                    f"{config.data.format} ({config.data.train_split} -> "
                                    f"{config.eval.split or config.data.val_split})")
  with ScalarWriter(ctx.path("tensorboard", "")) as writer:
    for method, result in report["methods"].items():
      for variant, scores in result["variants"].items():
        summary = scores.get("miou")
        value = summary["mean"] if isinstance(summary, Mapping) else summary
        tag = re.sub(r"[^A-Za-z0-9_]+", "_", method).strip("_")
        writer.scalars(0, {f"eval/{tag}/{variant}/miou": value})
  for method, result in report["methods"].items():
    for variant, scores in result["variants"].items():
      parts = []
      for key in ("miou", "oacc", "macc"):
        value = scores[key]
        parts.append(f"{key} {value['mean']:.2f} ± {value['std']:.2f}"
                     if isinstance(value, Mapping) else f"{key} {value:.2f}")
      _LOG.info("%s [%s]: %s", method, variant, ", ".join(parts))
  _LOG.info("report written to %s and %s", json_path, md_path)
