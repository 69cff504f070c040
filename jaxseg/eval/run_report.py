"""The end-of-run report: `<workdir>/report.json` and `report.md`, `timings.json` (seconds per
stage of this invocation, and of the earlier ones a resumed run continues), TensorBoard
scalars, and the headline table printed to the log."""

from __future__ import annotations

import collections
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


def timings(previous: Any, stage_seconds: Mapping[str, float],
            compilations: Mapping[str, Any], resumed: bool) -> dict[str, Any]:
  """timings.json's content: {'stage_seconds', 'compilations'} of this invocation; for a
  resumed run also 'earlier_invocations' (the same pairs, oldest first, from `previous`, the
  run's earlier timings.json or None) and 'stage_seconds_all_invocations' (their sums)."""
  record = {"stage_seconds": dict(stage_seconds), "compilations": dict(compilations)}
  if not resumed or not isinstance(previous, Mapping) or "stage_seconds" not in previous:
    return record
  earlier = [*previous.get("earlier_invocations", []),
             {k: previous[k] for k in ("stage_seconds", "compilations") if k in previous}]
  totals = collections.Counter()
  for invocation in [*earlier, record]:
    totals.update(invocation["stage_seconds"])
  return {**record, "earlier_invocations": earlier,
          "stage_seconds_all_invocations": dict(totals)}


def write_run_report(ctx: RunContext, results: Mapping[str, Mapping[str, Any]],
                     stage_seconds: Mapping[str, float],
                     provenance: Mapping[str, str] | None = None,
                     resumed: bool = False) -> None:
  """Writes the report (when there are results; the main process of a multi-process run)
  and logs the metrics and stage times.

  provenance: what produced the evaluated features (method, initialisation, teacher only when
  distillation ran), copied into the report's meta after the encoder's name.
  resumed: this invocation continues an earlier one (--resume); timings.json keeps the earlier
  invocations' times."""
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
  atomic.write_json(path, timings(atomic.read_json(path), stage_seconds, compilations, resumed))
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
