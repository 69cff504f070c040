"""CluRender pre-training (SoftClu soft clustering + rendering into the posed frames) on
ScanNet v2, on the voxel encoder.

  python experiments/main.py --config configs/scannet_clurender.py
      The built-in procedural rooms (20 posed frames each) at 5 cm, 12 epochs, 4 views of
      320x240 a scene and step, 1,024 pixels compared a view: pre-training, then the
      unsupervised evaluation (Hungarian-matched clustering, super-voxel pooling, linear
      probe). A demo. --config.clurender.views=0 trains SoftClu alone;
      --config.model.name=dgcnn trains the references' DGCNN backbone on 4,096 farthest-point
      samples of each scene instead of the voxel encoder.

  python experiments/main.py --config configs/scannet_clurender.py:reference \\
      --config.data.root=/data/ScanNet/scans
      Real ScanNet v2 (with its SensReader frames), 5 cm, batch 8, the reference code's 250
      epochs, 64 clusters, both transport terms, 8 views of 320x240 per scene and step. Add
      --config.clurender.terms="('xyz',)" for the paper's single term,
      --config.clurender.image_loss=sliced_wasserstein for the code's image loss.

The network then starts other methods: --config.init=<this run> with scannet_svc.py,
scannet_growsp.py or scannet_coarse3d.py. The reference trains without augmentation; so do
these configs (data.augment off).
"""

from jaxseg import config_defaults as common


def get_config(variant: str = "demo"):
  if variant not in ("demo", "reference"):
    raise ValueError(f"unknown variant {variant!r} of scannet_clurender.py; use demo or "
                     "reference")
  fmt = "scannet" if variant == "reference" else "synthetic"
  data = common.data_config(fmt=fmt, num_classes=20, voxel_size=0.05, smoothness_deg=5.0)
  data.batch_size = 8 if variant == "reference" else 4
  common.no_augmentation(data)
  config = common.base_config(name=f"scannet_clurender_{variant}", data=data)
  config.method = "clurender"
  # CluRender pre-trains on xyz alone: the colour head must predict colour from geometry.
  config.model.input_colors = False
  config.mode = "train"
  if variant == "demo":
    config.clurender.epochs = 12
    # Sized for a CPU: 4 views a scene and step, 1,024 pixels compared a view.
    config.clurender.views = 4
    config.clurender.render.pixels = 1024
    config.checkpoint.every_steps = 4
  return config
