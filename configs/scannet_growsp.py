"""GrowSP on ScanNet v2: super-point growing and primitive learning, no 2D features.

  python experiments/main.py --config configs/scannet_growsp.py
      The built-in procedural rooms at 5 cm with a short schedule (3 fixed + 6 growing epochs,
      a round every 3, 60 primitives, no mixup): end to end in minutes on 2 CPU cores. A demo.

  python experiments/main.py --config configs/scannet_growsp.py:reference \\
      --config.data.root=/data/ScanNet/scans
      Real ScanNet v2 with the reference settings: 5 cm, batch 8, 330 + 600 epochs, a round
      every 10, 300 primitives, super-points 80 -> 30 per scene, SGD 0.1 with PolyLR.
      Add --config.init=<a PointDC distillation run> to start from distilled features.
"""

from jaxseg import config_defaults as common


def get_config(variant: str = "demo"):
  if variant not in ("demo", "reference"):
    raise ValueError(f"unknown variant {variant!r} of scannet_growsp.py; use demo or reference")
  fmt = "scannet" if variant == "reference" else "synthetic"
  data = common.data_config(fmt=fmt, num_classes=20, voxel_size=0.05, smoothness_deg=5.0)
  data.batch_size = 8 if variant == "reference" else 4
  config = common.base_config(name=f"scannet_growsp_{variant}", data=data)
  config.method = "growsp"
  config.mode = "train"
  if variant == "demo":
    g = config.growsp
    g.fixed_epochs, g.growing_epochs, g.round_epochs = 3, 6, 3
    g.primitives, g.min_segment_points = 60, 10
    # Mixup gives every batch a new size (a random partner scene), so a short run spends most
    # of its time compiling new capacity signatures on a CPU; the reference variant keeps it.
    g.mixup = False
    config.checkpoint.every_steps = 4
  return config
