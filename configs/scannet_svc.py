"""PointDC on ScanNet v2 (2 cm voxels, 20 classes); by default on the built-in synthetic rooms.

  python experiments/main.py --config configs/scannet_svc.py
  python experiments/main.py --config configs/scannet_svc.py --config.mode=prepare \
      --config.data.format=scannet --config.data.root=/data/ScanNet/scans
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config():
  data = common.data_config(fmt="synthetic", num_classes=20, voxel_size=0.02,
                            smoothness_deg=5.0)
  return common.base_config(name="scannet_svc", data=data)
