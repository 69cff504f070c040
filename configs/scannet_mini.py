"""The real ScanNet mini sample beside the repository (../shared/data/scannet_mini, or
$JAXSEG_SCANNET_MINI): the README's results table.

  # 1. Distil on the 3 scans that have posed RGB-D frames (mmdetection3d layout).
  python experiments/main.py --config configs/scannet_mini.py:cmd
  # 2. Cluster the 18 labelled scans from it, evaluate (train on all, evaluate on all: the
  #    transductive protocol of unsupervised clustering). Add --config.svc.assign=sinkhorn
  #    (and another workdir) for Sinkhorn labels.
  python experiments/main.py --config configs/scannet_mini.py \
      --config.init=workdirs/scannet_mini_cmd
  # GrowSP on the same scans, from a random network and from the distillation run:
  python experiments/main.py --config configs/scannet_mini.py:growsp
  python experiments/main.py --config configs/scannet_mini.py:growsp \
      --config.init=workdirs/scannet_mini_cmd --config.workdir=workdirs/scannet_mini_growsp_cmd
  # Baselines on the same scans:
  python experiments/main.py --config configs/scannet_mini.py --config.mode=eval \
      --config.eval.features=raw_descriptors --config.workdir=workdirs/scannet_mini_raw
  python experiments/main.py --config configs/scannet_mini.py --config.mode=eval \
      --config.eval.checkpoint=random --config.workdir=workdirs/scannet_mini_random
  # COARSE3D from 0.1% of the points of rooms 0000-0005, evaluated on rooms 0006-0008 (and
  # its baselines: --config.coarse3d.contrast=False, --config.weak.ratio=1
  # --config.weak.by=point; tools/scannet_mini_coarse3d.sh runs them all):
  python experiments/main.py --config configs/scannet_mini.py:coarse3d --config.weak.seed=0
  # SoftClu pre-training (CluRender's clustering branch) on all 18 scans, then evaluated;
  # CluRender adds rendering into the posed frames (only scene0000_00 of the 18 has them):
  python experiments/main.py --config configs/scannet_mini.py:softclu
  python experiments/main.py --config configs/scannet_mini.py:clurender
  # Both trained on the 3 posed scans (all with frames), then evaluated on the 18 labelled:
  python experiments/main.py --config configs/scannet_mini.py:clurender_posed
  python experiments/main.py --config configs/scannet_mini.py --config.mode=eval \
      --config.eval.checkpoint=workdirs/scannet_mini_clurender_posed \
      --config.workdir=workdirs/scannet_mini_clurender_posed_eval

5 cm voxels (GrowSP's ScanNet setting; the scans are 50,000-point subsets) and a shortened
schedule: CMD 100 epochs; SVC 5 warm-up + 15 epochs re-clustering every 5; GrowSP 10 fixed +
20 growing epochs, a round every 5, without mixup; COARSE3D 20 epochs, contrast from epoch 2;
SoftClu and CluRender 20 epochs without augmentation (30 one-step epochs on the 3
posed scans).
"""

import os

from jaxseg import config_defaults as common

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mini_root() -> str:
  return os.path.abspath(os.environ.get(
      "JAXSEG_SCANNET_MINI", os.path.join(_ROOT, "..", "shared", "data", "scannet_mini")))


def get_config(variant: str = "svc"):
  variants = ("svc", "cmd", "growsp", "coarse3d", "softclu", "clurender", "softclu_posed",
              "clurender_posed")
  if variant not in variants:
    raise ValueError(f"unknown variant {variant!r} of scannet_mini.py; use one of "
                     f"{', '.join(variants)}")
  root = mini_root()
  posed = variant.endswith("_posed")
  if variant == "cmd" or posed:
    # The posed scans: raw mesh vertices (points/) with their frames (posed/); the demo scene
    # without frames is skipped.
    data = common.data_config(fmt="mmdet3d", root=root, num_classes=20, voxel_size=0.05,
                              smoothness_deg=5.0)
    data.skip_bad = True
    data.batch_size = 3 if posed else 1
  else:
    data = common.data_config(fmt="votenet", root=os.path.join(root, "labeled"),
                              num_classes=20, voxel_size=0.05, smoothness_deg=5.0)
    data.frames_root = os.path.join(root, "posed")
    data.batch_size = 3
  if variant == "coarse3d":
    # Methods that learn from labels: train on rooms 0000-0005, evaluate on rooms 0006-0008.
    data.train_split = "scene000[0-5]_*"
    data.val_split = "scene000[6-8]_*"
  else:
    # Transductive protocol of unsupervised clustering: train and evaluate on all scans.
    data.train_split = "all"
    data.val_split = "all"
  common.coarse_voxels(data)
  config = common.base_config(name=f"scannet_mini_{variant}", data=data)
  common.short_schedule(config, cmd_epochs=100, warmup_epochs=5, epochs=15, recluster_every=5)
  config.mode = "train"
  if variant == "growsp":
    config.method = "growsp"
    g = config.growsp
    g.fixed_epochs, g.growing_epochs, g.round_epochs = 10, 20, 5
    # Mixup gives every batch a new size, and on 2 CPU cores the first epochs then took 4-8
    # minutes each, mostly compiling (2026-12-02); off for this CPU-sized schedule.
    g.mixup = False
  if variant == "coarse3d":
    config.method = "coarse3d"
    config.coarse3d.epochs = 20
    config.coarse3d.contrast_start_epoch = 2
  if variant.startswith(("softclu", "clurender")):
    config.method = "clurender"
    config.clurender.epochs = 30 if posed else 20
    # softclu: the clustering branch alone; clurender: plus rendering into the posed frames
    # (of the 18 labelled scans only scene0000_00 has them in posed/; the *_posed variants
    # train on the 3 posed scans, every one with frames, one batch of 3 a step, and are
    # evaluated on the 18 labelled scans by a separate eval run).
    config.clurender.views = 8 if variant.startswith("clurender") else 0
    config.model.input_colors = False     # xyz-only input, as CluRender pre-trains
    config.eval.after_training = not posed
    common.no_augmentation(config.data)
  if variant == "cmd":   # Distillation only.
    config.svc.warmup_epochs = 0
    config.svc.epochs = 0
    config.eval.after_training = False
  return config
