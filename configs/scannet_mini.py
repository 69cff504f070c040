"""The real ScanNet mini sample (18 labelled scans, VoteNet export) beside the repository.

  python experiments/main.py --config configs/scannet_mini.py --config.mode=prepare
  (or --config.data.root=/path/to/scannet_mini/labeled)
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config():
  root = os.environ.get("JAXSEG_SCANNET_MINI",
                        os.path.join(_ROOT, "..", "shared", "data", "scannet_mini"))
  data = common.data_config(fmt="votenet", root=os.path.join(os.path.abspath(root), "labeled"),
                            num_classes=20, voxel_size=0.02, smoothness_deg=5.0)
  # Transductive protocol of unsupervised clustering: train and evaluate on all 18 scans.
  data.train_split = "all"
  data.val_split = "all"
  return common.base_config(name="scannet_mini", data=data)
