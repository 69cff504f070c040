"""Collects the reports of finished runs into the README's Markdown results table.

  python tools/results_table.py WORKDIR [WORKDIR ...] [--cmd CMD_WORKDIR]

Each WORKDIR holds a `report.json` (modes svc / eval); the table gives mIoU / oAcc / mAcc as
mean ± population std over the K-means seeds, point-wise and with test-time super-voxel
pooling, the linear probe, the protocol (the split clusters are fitted on -> the split
evaluated) and the seconds each stage took (CMD from --cmd's timings.json).
"""

from __future__ import annotations

import argparse
import json
import os


def _cell(scores) -> str:
  parts = []
  for key in ("miou", "oacc", "macc"):
    value = scores[key]
    parts.append(f"{value['mean']:.1f} ± {value['std']:.1f}" if isinstance(value, dict)
                 else f"{value:.1f}")
  return " / ".join(parts)


def _seconds(stage_seconds: dict) -> str:
  return ", ".join(f"{stage} {seconds / 60:.1f} min" for stage, seconds in
                   stage_seconds.items())


def table(workdirs: list[str], cmd_workdir: str | None) -> str:
  rows = ["| Method | Teacher | protocol | mIoU / oAcc / mAcc (points) | "
          "with super-voxel pooling | linear probe | time |", "|---|---|---|---|---|---|---|"]
  for workdir in workdirs:
    with open(os.path.join(workdir, "report.json")) as f:
      report = json.load(f)
    meta = report["meta"]
    for method, entry in report["methods"].items():
      variants = entry["variants"]
      probe = _cell(variants["linear_probe"]) if "linear_probe" in variants else "-"
      teacher = meta.get("teacher", "-").split(" (")[0]
      splits = entry["splits"]
      protocol = ("transductive (all)" if splits["clusters_fitted_on"] == splits["evaluated_on"]
                  else f"{splits['clusters_fitted_on']} → {splits['evaluated_on']}")
      rows.append(f"| {method} | {teacher} | {protocol} | {_cell(variants['point'])} | "
                  f"{_cell(variants['supervoxel_pooled'])} | {probe} | "
                  f"{_seconds(meta['stage_seconds'])} |")
  if cmd_workdir:
    with open(os.path.join(cmd_workdir, "timings.json")) as f:
      timings = json.load(f)   # a resumed run: the sums over its invocations
    seconds = timings.get("stage_seconds_all_invocations", timings["stage_seconds"])
    rows.append(f"\nCMD (shared by the rows that start from it): {_seconds(seconds)}.")
  return "\n".join(rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--cmd", default=None, help="the CMD run's work directory")
  args = parser.parse_args()
  print(table(args.workdirs, args.cmd))


if __name__ == "__main__":
  main()
