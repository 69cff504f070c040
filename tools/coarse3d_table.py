"""The README's COARSE3D table from finished runs: mIoU / oAcc / mAcc as mean ± population std
over the label draws of each (method, labels) row.

  python tools/coarse3d_table.py WORKDIR [WORKDIR ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os

import numpy as np

from jaxseg.methods.coarse3d import weak_labels


def _row_key(report: dict, config: dict, workdir: str) -> tuple[str, str]:
  (method,) = report["methods"]
  weak = config["weak"]
  if os.path.isfile(os.path.join(workdir, weak_labels.FILE_NAME)):
    # The settings that drew the labels the run trained on (another run's, with labels_from).
    weak = {**weak, **weak_labels.load(workdir)[1]}
  if weak["ratio"] >= 1 and weak["by"] == "point":
    labels = "all labels"
  else:
    labels = f"{100 * float(weak['ratio']):g}% ({weak['by']}s of {weak['voxel_size']} m)"
  if config.get("init") not in ("", "random", None):
    method += " from a pre-trained run"
  if method == "COARSE3D" and float(config["coarse3d"]["momentum"]) != 0.999:
    method += f" (bank momentum {config['coarse3d']['momentum']})"
  if method == "COARSE3D" and config["coarse3d"].get("loss") == "focal_lovasz":
    method += " (focal + Lovász)"
  return method, labels


def table(workdirs: list[str]) -> str:
  rows = collections.defaultdict(list)
  for workdir in workdirs:
    if not os.path.isfile(os.path.join(workdir, "report.json")):
      continue
    with open(os.path.join(workdir, "report.json")) as f:
      report = json.load(f)
    with open(os.path.join(workdir, "config.json")) as f:
      config = json.load(f)
    (entry,) = report["methods"].values()
    scores = entry["variants"]["supervised"]
    rows[_row_key(report, config, workdir)].append(
        (scores["miou"], scores["oacc"], scores["macc"], report["meta"]["stage_seconds"]))
  lines = ["| Method | labels | draws | mIoU | oAcc | mAcc | minutes per run |",
           "|---|---|---|---|---|---|---|"]
  for (method, labels), runs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    values = np.asarray([r[:3] for r in runs])
    minutes = np.mean([sum(r[3].values()) for r in runs]) / 60
    cells = [f"{values[:, i].mean():.1f} ± {values[:, i].std():.1f}" for i in range(3)]
    lines.append(f"| {method} | {labels} | {len(runs)} | " + " | ".join(cells) +
                 f" | {minutes:.0f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+")
  print(table(parser.parse_args().workdirs))


if __name__ == "__main__":
  main()
