"""A user's own unlabelled clouds (.ply/.pcd/.npy/.txt files in data.root).

  python experiments/main.py --config configs/custom_cloud.py --config.mode=prepare \
      --config.data.root=/path/to/my_scans
"""

from jaxseg import config_defaults as common


def get_config():
  data = common.data_config(fmt="custom", num_classes=20, voxel_size=0.05,
                            smoothness_deg=5.0)
  data.train_split = "all"
  data.val_split = "all"
  return common.base_config(name="custom_cloud", data=data)
