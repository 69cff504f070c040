"""PointDC stage 1 only: cross-modal distillation on ScanNet v2 (2 cm voxels), reference
schedule (200 epochs, Adam 1e-3, batch 8).

  python experiments/main.py --config configs/scannet_cmd.py \
      --config.data.format=scannet --config.data.root=/data/ScanNet/scans \
      --config.data.frames_root=/data/ScanNet/frames \
      --config.teacher.name=dino_vits8 --config.teacher.checkpoint=/weights/dino_deitsmall8_pretrain.pth

Then cluster from it: configs/scannet_svc.py:reference with
--config.init=<this run's workdir>. Without arguments it distils on the built-in
rooms with the no-weights fallback teacher (a demo, not DINO).
"""

from jaxseg import config_defaults as common


def get_config():
  data = common.data_config(fmt="synthetic", num_classes=20, voxel_size=0.02,
                            smoothness_deg=5.0)
  data.batch_size = 8
  config = common.base_config(name="scannet_cmd", data=data)
  config.mode = "train"
  # Distillation only: no clustering phases, no evaluation.
  config.svc.warmup_epochs = 0
  config.svc.epochs = 0
  config.eval.after_training = False
  return config
