"""Super-voxel oracle on the labelled ScanNet mini scans (VCCS + region growing, no mesh).

  python tools/supervoxel_oracle.py --root ../shared/data/scannet_mini [--smoothness 5]

Writes benchmarks/supervoxel_oracle.json and prints a markdown table. Pooled figures sum the
confusion matrices of all scans; "mean" figures average the per-scan values.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

from jaxseg.io.labels import SCANNET_CLASSES
from jaxseg.io.votenet import list_votenet_scenes, read_votenet_scene
from jaxseg.logging_utils import progress
from jaxseg.supervoxels.api import compute_supervoxels
from jaxseg.supervoxels.oracle import oracle_scores, scores_from_confusion

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="scannet_mini directory (has labeled/)")
  parser.add_argument("--smoothness", type=float, default=5.0,
                      help="region-growing smoothness threshold, degrees (ScanNet 5, S3DIS 3)")
  parser.add_argument("--min-points", type=int, default=1,
                      help="super-voxels with fewer points are dropped (-1)")
  parser.add_argument("--out", default=os.path.join(_ROOT, "benchmarks",
                                                    "supervoxel_oracle.json"))
  args = parser.parse_args()
  directory = os.path.join(args.root, "labeled")
  scenes = list_votenet_scenes(directory)
  if not scenes:
    parser.error(f"no <scene>_vert.npy files in {directory}")
  num_classes = len(SCANNET_CLASSES)
  pooled = np.zeros((num_classes, num_classes + 1), np.int64)
  rows = []
  for name in progress(scenes, desc="supervoxels"):
    scene = read_votenet_scene(directory, name)
    start = time.perf_counter()
    segments = compute_supervoxels(scene, method="vccs", smoothness_deg=args.smoothness,
                                   min_points=args.min_points)
    seconds = time.perf_counter() - start
    result = oracle_scores(segments, scene.labels, num_classes)
    pooled += result["confusion"]
    rows.append({"scene": name, "points": scene.num_points, "miou": result["miou"],
                 "oacc": result["oacc"], "num_segments": result["num_segments"],
                 "points_per_segment": float((segments >= 0).sum() / result["num_segments"]),
                 "coverage": result["coverage"], "seconds": seconds})
  total = scores_from_confusion(pooled)
  summary = {
      "scans": len(rows), "smoothness_deg": args.smoothness, "min_points": args.min_points,
      "pooled_miou": total["miou"], "pooled_oacc": total["oacc"],
      "mean_miou": float(np.mean([r["miou"] for r in rows])),
      "mean_oacc": float(np.mean([r["oacc"] for r in rows])),
      "mean_num_segments": float(np.mean([r["num_segments"] for r in rows])),
      "mean_points_per_segment": float(np.mean([r["points_per_segment"] for r in rows])),
      "mean_seconds_per_scan": float(np.mean([r["seconds"] for r in rows])),
      "per_class_iou": {c: (None if np.isnan(v) else float(v))
                        for c, v in zip(SCANNET_CLASSES, total["per_class_iou"])},
  }
  record = {"tool": "supervoxel_oracle", "command": " ".join(["python"] + sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "summary": summary, "scans": rows}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=2)
  print("| scene | mIoU | oAcc | super-voxels | points / SV | s |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['scene']} | {100 * r['miou']:.1f} | {100 * r['oacc']:.1f} | "
          f"{r['num_segments']} | {r['points_per_segment']:.0f} | {r['seconds']:.2f} |")
  print(f"| **mean** | {100 * summary['mean_miou']:.1f} | {100 * summary['mean_oacc']:.1f} | "
        f"{summary['mean_num_segments']:.0f} | {summary['mean_points_per_segment']:.0f} | "
        f"{summary['mean_seconds_per_scan']:.2f} |")
  print(f"\npooled over {len(rows)} scans: mIoU {100 * total['miou']:.1f}, "
        f"oAcc {100 * total['oacc']:.1f}; wrote {args.out}")


if __name__ == "__main__":
  main()
