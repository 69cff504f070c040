"""COARSE3D on ScanNet v2: semantic segmentation from a few labelled points.

  python experiments/main.py --config configs/scannet_coarse3d.py
      The built-in procedural rooms at 5 cm with 0.1% of the points labelled (6 cm voxels):
      12 epochs (contrast from epoch 2), evaluated as supervised segmentation. A demo.

  python experiments/main.py --config configs/scannet_coarse3d.py:reference \\
      --config.data.root=/data/ScanNet/scans [--config.weak.ratio=0.0001]
      Real ScanNet v2, 2 cm, batch 8, 100 epochs, 0.1% labels.

Baselines on the same labels (the same weak.seed draws the same points):
  --config.coarse3d.contrast=False                 cross-entropy on the weak labels only
  --config.weak.ratio=1 --config.weak.by=point     full supervision (every label)
  --config.init=<a PointDC or GrowSP run>          start from unsupervised pre-training
"""

from jaxseg import config_defaults as common


def get_config(variant: str = "demo"):
  if variant not in ("demo", "reference"):
    raise ValueError(f"unknown variant {variant!r} of scannet_coarse3d.py; use demo or "
                     "reference")
  if variant == "reference":
    data = common.data_config(fmt="scannet", num_classes=20, voxel_size=0.02,
                              smoothness_deg=5.0)
    data.batch_size = 8
  else:
    data = common.data_config(fmt="synthetic", num_classes=20, voxel_size=0.02,
                              smoothness_deg=5.0)
    common.coarse_voxels(data)
  config = common.base_config(name=f"scannet_coarse3d_{variant}", data=data)
  config.method = "coarse3d"
  config.mode = "train"
  if variant == "demo":
    config.coarse3d.epochs = 12
    config.coarse3d.contrast_start_epoch = 2
    config.checkpoint.every_steps = 4
  return config
