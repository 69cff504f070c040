"""PointDC on ScanNet v2: cross-modal distillation, then super-voxel clustering, then evaluation.

  python experiments/main.py --config configs/scannet_svc.py
      The built-in procedural rooms (generated on first use) at 5 cm with a short schedule
      (CMD 6 epochs, SVC 2 warm-up + 4 epochs re-clustering every 2) and the no-weights
      fallback teacher: end to end in minutes on 2 CPU cores. A demo, not a paper number.

  python experiments/main.py --config configs/scannet_svc.py:reference \
      --config.data.root=/data/ScanNet/scans --config.data.frames_root=/data/ScanNet/frames \
      --config.teacher.name=dino_vits8 --config.teacher.checkpoint=/weights/dino_vits8.pth
      Real ScanNet v2 with the reference settings: 2 cm voxels, batch 8, CMD 200 epochs (Adam
      1e-3), SVC 30 warm-up + 60 epochs re-clustering every 5 (SGD 3e-2, decay 0.8 every 5).
      Add --config.init=<a scannet_cmd workdir> to skip distillation.
"""

from jaxseg import config_defaults as common


def get_config(variant: str = "demo"):
  if variant not in ("demo", "reference"):
    raise ValueError(f"unknown variant {variant!r} of scannet_svc.py; use demo or reference")
  if variant == "reference":
    data = common.data_config(fmt="scannet", num_classes=20, voxel_size=0.02,
                              smoothness_deg=5.0)
    data.batch_size = 8
    config = common.base_config(name="scannet_svc", data=data)
    config.svc.kmeans_max_points_per_centroid = 256   # faiss's default, as the reference runs.
    config.eval.num_clusters = 30   # eval_by_cluster: 30 primitives merged to 20 classes.
    config.eval.every_epochs = 5    # The reference evaluates every 5 epochs.
  else:
    data = common.data_config(fmt="synthetic", num_classes=20, voxel_size=0.02,
                              smoothness_deg=5.0)
    common.coarse_voxels(data)
    config = common.base_config(name="scannet_svc_demo", data=data)
    common.short_schedule(config, cmd_epochs=6, warmup_epochs=2, epochs=4, recluster_every=2)
    config.checkpoint.every_steps = 4
  config.mode = "train"
  return config
