"""PointDC on S3DIS v1.2 (5 cm voxels, 13 classes with clutter; train Areas 1-4,6, test 5),
reference schedule and S3DIS settings (rooms stored at one point per 1 cm cube, batch 8, an
8 m training clip, super-voxels under 50 points dropped). Evaluation never clips or crops:
every room is evaluated whole, whatever its size (capacities follow the scenes; there is no
size limit).

  python experiments/main.py --config configs/s3dis_svc.py \
      --config.data.root=/data/Stanford3dDataset_v1.2 --config.init=RUN

S3DIS ships no posed RGB-D frames, so distillation cannot run on it: pass a CMD run (e.g. one
distilled on ScanNet) as init, or 'random' to cluster from a random network.
"""

from jaxseg import config_defaults as common


def get_config():
  data = common.data_config(fmt="s3dis", num_classes=13, voxel_size=0.05,
                            smoothness_deg=3.0)
  data.train_split = "train"
  data.val_split = "test"
  data.presample = 0.01         # The reference's S3DIS settings: rooms stored at 1 cm,
  data.batch_size = 8           # batch 8,
  data.clip_box = 4.0           # training rooms clipped to an 8 m box,
  config = common.base_config(name="s3dis_svc", data=data)
  config.svc.min_segment_points = 50    # super-voxels under 50 points left out.
  config.mode = "train"
  return config
