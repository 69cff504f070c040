"""Evaluation reports (JSON + Markdown) and TensorBoard scalars written and read without TF.

  results = {
      "class_names": ["wall", "floor", ...],                       # C names, class-id order
      "methods": {
          "pointdc": {"variants": {"point": seed_summary(runs),
                                   "supervoxel_pooled": seed_summary(pooled_runs)}},
          "linear_probe": {"variants": {"point": clustering_or_segmentation_scores}},
      },
      "meta": {"dataset": "scannet", "split": "val", "checkpoint": "...", ...},  # optional
  }
  json_path, md_path = write_report(workdir, "eval_val", results, "PointDC on ScanNet val")

  with ScalarWriter(logdir) as writer:
    writer.scalars(step, {"train/loss": 0.7, "eval/miou": 25.1})
  read_scalars(logdir)   # {"train/loss": [(step, 0.7)], ...}

A variant's scores are either a `metrics.seed_summary` (mean, population std and per-seed
values over K-means seeds) or one run's `metrics.segmentation_scores` / `clustering_scores`
(taken as a summary of one seed; its 'iou' list is named with `class_names` when it has no
'class_iou'). The Markdown report holds a table of mIoU / oAcc / mAcc per
method and variant (mean ± std when there are several seeds) and a per-class IoU table (mean
over seeds; "-" for classes absent from the ground truth).
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
from typing import Any, Iterator, Mapping

import numpy as np
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from jaxseg import distributed
from jaxseg.errors import InputError
from jaxseg.eval.metrics import seed_summary
from jaxseg.logging_utils import get_logger

_LOG = get_logger("eval.report")
_HEADLINE = (("miou", "mIoU"), ("oacc", "oAcc"), ("macc", "mAcc"))


def _jsonable(value: Any) -> Any:
  """Numpy scalars / arrays to Python, NaN / inf to None, recursively."""
  if isinstance(value, Mapping):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, np.ndarray)):
    return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _summary(scores: Mapping[str, Any], class_names: list[str]) -> Mapping[str, Any]:
  """A seed summary of `scores`; single runs without 'class_iou' name their 'iou' list."""
  if "num_seeds" in scores:
    return scores
  if "class_iou" not in scores and len(scores.get("iou", ())) == len(class_names):
    scores = {**scores, "class_iou": dict(zip(class_names, scores["iou"]))}
  return seed_summary([scores])


def _check(results: Mapping[str, Any]) -> None:
  where = "report results"
  if not isinstance(results.get("methods"), Mapping) or not results["methods"]:
    raise InputError(where, "no 'methods' mapping", "pass {'methods': {name: {'variants': "
                     "{variant: scores}}}, 'class_names': [...]}")
  if not isinstance(results.get("class_names"), (list, tuple)):
    raise InputError(where, "no 'class_names' list", "pass the class names in class-id order")
  for method, entry in results["methods"].items():
    variants = entry.get("variants") if isinstance(entry, Mapping) else None
    if not isinstance(variants, Mapping) or not variants:
      raise InputError(f"{where}.methods.{method}", "no 'variants' mapping",
                       "pass {'variants': {'point': scores, ...}}")
    for variant, scores in variants.items():
      missing = [k for k, _ in _HEADLINE if k not in scores]
      if missing:
        raise InputError(f"{where}.methods.{method}.variants.{variant}",
                         f"scores lack {missing}", "pass metrics.seed_summary(...) or "
                         "metrics.clustering_scores(...) output")


def _value(score: Any) -> float:
  return float(score["mean"] if isinstance(score, Mapping) else score)


def _cell(score: Any, seeds: int) -> str:
  if seeds > 1:
    return f"{score['mean']:.2f} ± {score['std']:.2f}"
  return f"{_value(score):.2f}"


def markdown_report(results: Mapping[str, Any], title: str) -> str:
  """The Markdown text of `write_report` (see the module docstring for `results`)."""
  _check(results)
  lines = [f"# {title}", ""]
  for key, value in results.get("meta", {}).items():
    lines.append(f"- {key}: {value}")
  if results.get("meta"):
    lines.append("")
  lines += ["## Scores", "", "| Method | Variant | mIoU | oAcc | mAcc | Seeds |",
            "|---|---|---:|---:|---:|---:|"]
  columns = []
  for method, entry in results["methods"].items():
    for variant, scores in entry["variants"].items():
      summary = _summary(scores, list(results["class_names"]))
      seeds = int(summary["num_seeds"])
      cells = " | ".join(_cell(summary[k], seeds) for k, _ in _HEADLINE)
      lines.append(f"| {method} | {variant} | {cells} | {seeds} |")
      columns.append((f"{method} / {variant}", summary.get("class_iou")))
  lines += ["", "Percent. mIoU and mAcc average the classes present in the ground truth; "
            "± is the population standard deviation over K-means seeds.", ""]
  with_classes = [(name, ious) for name, ious in columns if ious]
  if with_classes:
    lines += ["## Per-class IoU", "",
              "| Class | " + " | ".join(name for name, _ in with_classes) + " |",
              "|---|" + "---:|" * len(with_classes)]
    for cls in results["class_names"]:
      cells = [ious.get(cls) for _, ious in with_classes]
      lines.append(f"| {cls} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells)
                   + " |")
    lines.append("")
  return "\n".join(lines)


def write_report(workdir: str, name: str, results: Mapping[str, Any],
                 title: str) -> tuple[str, str]:
  """Writes `<workdir>/<name>.json` (results, NaN as null) and `<workdir>/<name>.md`.

  Args:
    workdir: output folder (created when missing).
    name: file stem, e.g. "eval_val".
    results: the structure in the module docstring.
    title: the Markdown heading.
  Returns:
    (json_path, md_path).
  """
  markdown = markdown_report(results, title)
  os.makedirs(workdir, exist_ok=True)
  json_path = os.path.join(workdir, f"{name}.json")
  md_path = os.path.join(workdir, f"{name}.md")
  with open(json_path, "w") as f:
    json.dump(_jsonable({"title": title, **results}), f, indent=2, allow_nan=False)
  with open(md_path, "w") as f:
    f.write(markdown)
  _LOG.info("report written to %s and %s", json_path, md_path)
  return json_path, md_path


class ScalarWriter:
  """TensorBoard scalars through tensorboardX (no TensorFlow needed to write or read); in a
  multi-process run only the main process writes (the others' writers do nothing)."""

  def __init__(self, logdir: str):
    self.logdir = logdir
    self._writer = SummaryWriter(logdir) if distributed.is_main() else None

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    """Logs {tag: number} at `step` (numpy / jax scalars are converted to float)."""
    for tag, value in values.items():
      if self._writer is not None:
        self._writer.add_scalar(tag, float(value), int(step))

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """Logs a uint8 (H, W, 3) image at `step`."""
    if self._writer is not None:
      self._writer.add_image(tag, np.asarray(image), int(step), dataformats="HWC")

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()

  def __enter__(self) -> "ScalarWriter":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _tfrecords(path: str) -> Iterator[bytes]:
  """Payloads of a TFRecord file: [len u64][masked crc32c of len u32][data][masked crc u32],
  little-endian. A truncated last record (a writer still running) ends the file quietly."""
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos + 12 <= len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
    if header_crc != masked_crc32c(header):
      raise InputError(path, f"corrupt record header at byte {pos}", "rewrite the event file")
    end = pos + 12 + length
    if end + 4 > len(data):
      return
    payload = data[pos + 12:end]
    (payload_crc,) = struct.unpack("<I", data[end:end + 4])
    if payload_crc != masked_crc32c(payload):
      raise InputError(path, f"corrupt record at byte {pos}", "rewrite the event file")
    yield payload
    pos = end + 4


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Scalars of the event files directly in `logdir` (not its subfolders), without TensorFlow.

  Reads every `events.out.tfevents.*` file (oldest name first) as TFRecords of
  `tensorboardX.proto.event_pb2.Event` and keeps summary values stored as `simple_value`
  (what `ScalarWriter` / tensorboardX `add_scalar` write). Returns {tag: [(step, value)]},
  each list in the order written.
  """
  paths = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
  if not paths:
    raise InputError(logdir, "no TensorBoard event files", "check the log directory")
  out: dict[str, list[tuple[int, float]]] = {}
  for path in paths:
    for payload in _tfrecords(path):
      event = event_pb2.Event.FromString(payload)
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        if value.WhichOneof("value") == "simple_value":
          out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
  return out
