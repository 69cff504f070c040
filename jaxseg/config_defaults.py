"""Building blocks of the config files in configs/ (each still defines get_config()):

  from jaxseg import config_defaults as common
  data = common.data_config(fmt="scannet", root=..., num_classes=20, voxel_size=0.02,
                            smoothness_deg=5.0)
  config = common.base_config(name="my_run", data=data)

Every key a run may set exists here with its default, so `--config.a.b=value` on a key that
does not exist is rejected before anything runs.
"""

from __future__ import annotations

import math

import ml_collections


def data_config(*, fmt: str, root: str = "", num_classes: int, voxel_size: float,
                smoothness_deg: float) -> ml_collections.ConfigDict:
  """Dataset, super-voxel and input-pipeline settings."""
  return ml_collections.ConfigDict({
      # synthetic | scannet | votenet | mmdet3d | s3dis | custom
      "format": fmt,
      # Root of the export (ignored for 'synthetic', which is generated into the cache).
      "root": root,
      # ScanNet only: folder of SensReader exports <frames_root>/<scene>/ ('' = in the scans).
      "frames_root": "",
      # ScanNet label map (scannetv2-labels.combined.tsv); '' = look in root.
      "label_map": "",
      # Where the ArrayRecord dataset is written; '' = $JAXSEG_CACHE or ~/.cache/jaxseg.
      "dataset_dir": "",
      "train_split": "train",
      # Use only the first N scenes of each split (0 = all), for quick trials.
      "max_scenes": 0,
      "val_split": "val",
      # Report and skip unreadable scenes instead of stopping (listed in skipped_scenes.json).
      "skip_bad": False,
      # Rebuild the ArrayRecord dataset even if it exists.
      "rebuild": False,
      "num_classes": num_classes,
      "voxel_size": voxel_size,
      # Store each scene sub-sampled to one point per cube of this edge in metres (0 = every
      # point; the S3DIS reference stores rooms at 0.01). Everything, evaluation included,
      # then works on the kept points (jaxseg.data.presample).
      "presample": 0.0,
      # Training only: random x-y crop to at most this many points (0 = never crop).
      # Evaluation never crops; capacities follow the scenes (jaxseg.data.capacity).
      "max_points": 0,
      # Training only: keep points within this many metres (x, y) of the scene's centre
      # (0 = no clip; the reference clips S3DIS rooms to an 8 m box, 4.0).
      "clip_box": 0.0,
      # Global batch size (split over processes, then packed into one buffer per device).
      "batch_size": 4,
      # Grain worker processes reading, augmenting, voxelising and building kernel maps
      # (0 = in the main process, on 2 threads).
      "num_workers": 0,
      # Read posed RGB-D frames where the format has them (needed by distillation).
      "with_frames": True,
      "augment": {
          "rotate_z": True,
          "tilt": math.pi / 32,
          "flip": True,
          "scale": (0.9, 1.1),
          "translate": 0.5,
          "color_jitter": 0.0,
          "coord_noise": 0.0,
          "color_noise": 0.0,
      },
      "supervoxels": {
          # auto: the ScanNet mesh segmentator when the scan has a mesh (and no segs.json),
          # else VCCS + region growing on the points.
          "method": "auto",
          "mesh": {"kthresh": 0.01, "min_vertices": 20},
          "vccs": {
              "voxel_size": 0.05,
              "seed_resolution": 0.5,
              "spatial_weight": 0.4,
              "normal_weight": 1.0,
              "color_weight": 0.2,
              "num_neighbors": 15,
              "smoothness_deg": smoothness_deg,
              "curvature_threshold": 1.0,
              "min_points": 10,
          },
      },
      # Point normals for clouds without a mesh (meshes use face-averaged vertex normals).
      "normals": {"radius": 0.1, "max_nn": 30},
      "synthetic": {"num_train": 8, "num_val": 3, "seed": 0, "frames_per_scene": 20,
                    "cache_dir": ""},
  })


def cmd_config() -> ml_collections.ConfigDict:
  """Cross-modal distillation (Eq. 3-7) with the reference schedule: 200 epochs, Adam 1e-3."""
  return ml_collections.ConfigDict({
      "epochs": 200,
      # voxel: every voxel regressed onto its super-voxel's target, MSE of unit vectors (the
      # reference code's MseMaskLoss); segment: one term per super-voxel on the mean
      # prediction (the paper's Eq. 7).
      "loss": "voxel",
      # Teacher features projected to this many dims by a PCA fitted on the targets (the
      # reference distils 70-d STEGO features); 0 or >= the teacher's width = raw features.
      "target_dim": 70,
      "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant",
                    "decay_every_epochs": 0, "decay_factor": 1.0},
      # Frames are resized to this (width, height) before the teacher.
      "image_size": (320, 240),
      "views_per_batch": 8,
      # Use at most this many evenly spaced frames per scene (0 = all).
      "max_views": 0,
      # Confirm visibility with the depth images where the scan has them.
      "use_depth": True,
      # Z-buffer: cells of this many pixels, points within the tolerance (m) of the nearest.
      "zbuffer_stride": 4,
      "occlusion_tolerance": 0.05,
      "depth_tolerance": 0.1,
  })


def svc_config() -> ml_collections.ConfigDict:
  """Super-voxel clustering (Eq. 8-12) with the reference schedule: 30 warm-up epochs on the
  first clustering at a constant 3e-2, then 60 epochs re-clustering every 5, SGD 3e-2 decayed
  0.8 every 5 epochs."""
  return ml_collections.ConfigDict({
      # K clusters (0 = data.num_classes); K > C over-clusters into primitives merged at eval.
      "num_clusters": 0,
      # kmeans: pseudo-labels from the K-means clustering; sinkhorn: transport labels with equal
      # cluster masses (OTT-JAX).
      "assign": "kmeans",
      # With assign=kmeans: supervoxel = each super-voxel's nearest centroid (the reference
      # code); pooled_points = point soft labels of the frozen cosine classifier pooled over the
      # super-voxel (the paper's Eq. 9-10; one more pass over the training set per round).
      "label_from": "supervoxel",
      "kmeans_iters": 80,
      # 0 = K-means fits on every super-voxel; m = on a seeded subset of K*m of them when there
      # are more (faiss's rule: the reference's faiss K-means uses m = 256), then assigns all.
      "kmeans_max_points_per_centroid": 0,
      # Eq. 9 softmax temperature of the point soft labels (label_from=pooled_points).
      "temperature": 0.1,
      # Logits = logit_scale * cos, times ||f|| unless normalize_features (reference: ||f|| cos).
      "logit_scale": 1.0,
      "normalize_features": False,
      "sinkhorn": {"marginal": "equipartition", "epsilon": 0.05, "num_iters": 100},
      "warmup_epochs": 30,
      # learned: a learnable cosine classifier trained in the warm-up (the reference's SegHead);
      # centroids: the frozen classifier of the first clustering (as the iterative phase).
      "warmup_head": "learned",
      # Step decay during the warm-up too (the reference builds a StepLR but never steps it).
      "warmup_lr_decay": False,
      "epochs": 60,
      "recluster_every": 5,
      "optimizer": {"name": "sgd", "lr": 3e-2, "momentum": 0.9, "dampening": 0.1,
                    "weight_decay": 1e-4, "schedule": "step", "decay_every_epochs": 5,
                    "decay_factor": 0.8},
      # Invariance perturbations added to data.augment (which holds the equivariant transforms)
      # for the training pass (colour std in 0..255 units).
      "invariance": {"color_jitter": 10.0, "color_noise": 3.0, "coord_noise": 0.0},
      # The clustering pass sees scenes augmented with data.augment, as the reference's (its
      # invariance comes from re-augmenting between the clustering and training passes).
      "augment_cluster_pass": True,
      # Reference behaviour: super-voxels without any labelled point, and ignore-class points,
      # take no pseudo-label (ground truth used only as an ignore mask).
      "gt_ignore_mask": True,
      # Super-voxels with fewer points are left out of clustering (no pseudo-label).
      "min_segment_points": 0,
  })


def eval_config() -> ml_collections.ConfigDict:
  """Evaluation: Hungarian-matched clustering over seeds, super-voxel pooling, linear probe."""
  return ml_collections.ConfigDict({
      # '' = the newest checkpoint of this work directory; a path = that run's work directory
      # or checkpoint folder; 'random' = a randomly initialised network (baseline).
      "checkpoint": "",
      # model: the network's point features; raw_descriptors: mean colour, xyz, normal.
      "features": "model",
      # Split to evaluate ('' = data.val_split); clusters are fitted on data.train_split.
      "split": "",
      "seeds": (12, 43, 56, 78, 90),
      # Clusters fitted on the training super-voxels (0 = svc.num_clusters, else num_classes),
      # merged to C classes by K-means of the centroids when more than C.
      "num_clusters": 0,
      "kmeans_iters": 80,
      # Evaluate after training (mode train).
      "after_training": True,
      # Validate every N epochs during training (clustering scores of the first seed; 0 = off).
      "every_epochs": 0,
      "linear_probe": True,
      # BatchNorm statistics of the evaluated network: 'running' (its running averages, as
      # the references evaluate) or 'recalibrate' (pooled over one pass of the training split
      # in training mode; for short runs, whose running averages are still mostly their
      # initial values; `jaxseg.eval.batch_norm`).
      "batch_norm": "running",
      # Pictures of the first N evaluated scenes (ground truth | prediction | errors, top-down
      # and oblique) in <workdir>/renders/ and TensorBoard, after training and in mode eval.
      "render_scenes": 2,
      "probe": {"points_per_scene": 4096, "steps": 2000, "lr": 1e-2, "weight_decay": 1e-4,
                "batch_size": 4096},
  })


def growsp_config() -> ml_collections.ConfigDict:
  """GrowSP (method 'growsp') with its ScanNet reference settings: 5 cm voxels, no 2D; 330
  epochs on the fixed super-voxels then 600 growing them from 80 to 30 per scene, a round every
  10 epochs, 300 primitives, cosine x 5 logits, SGD 0.1 with PolyLR per stage, batch 8."""
  return ml_collections.ConfigDict({
      "fixed_epochs": 330,
      "growing_epochs": 600,
      # Re-cluster (grow, then fit the primitives) at the start of every N-th epoch.
      "round_epochs": 10,
      "primitives": 300,
      # Super-points per scene in the growing stage: from grow_start down to grow_end.
      "grow_start": 80,
      "grow_end": 30,
      # Logits = temperature * cos(feature, primitive) (5 for ScanNet, 3 for S3DIS).
      "temperature": 5.0,
      # Mix a second, independently augmented training scene into every training scene (its
      # points take no loss), as the reference's datasets do.
      "mixup": True,
      # Super-voxels with fewer points take no part (30 for ScanNet, 10 for S3DIS), nor those
      # without a labelled point (ground truth used only as an ignore mask, as the reference).
      "min_segment_points": 30,
      "gt_ignore_mask": True,
      # Growing features: unit neural feature + these multiples of the mean colour (RGB/255 -
      # 0.5), position (metres, scene-centred) and normal.
      "growing_weights": {"rgb": 1.0, "xyz": 0.2, "normal": 0.8},
      # Primitive descriptor: unit neural feature + these multiples of the mean colour and the
      # 10-bin normal histogram, normalised.
      "primitive_weights": {"rgb": 3.0, "shape": 3.0},
      # Points per super-point for its normal histogram (a seeded choice when more).
      "histogram_points": 512,
      "kmeans_iters": 80,
      "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1,
                    "weight_decay": 1e-4, "schedule": "poly", "power": 0.9},
  })


def coarse3d_config() -> ml_collections.ConfigDict:
  """COARSE3D (method 'coarse3d') with its reference settings where they carry indoors (20
  prototypes x 256 dims per class, momentum 0.999, Sinkhorn epsilon 0.05 x 3 iterations, 512
  anchors per class and scene, tau 0.07, contrast weight 0.1 from epoch 5 of 100); see
  README for the adaptations."""
  return ml_collections.ConfigDict({
      "epochs": 100,
      # False: the supervised loss on the weak labels only (the baseline of the same network).
      "contrast": True,
      # Supervised loss: cross_entropy (adaptation, the default) | focal_lovasz (the
      # reference's focal, gamma focal_gamma, class weights from the weak labels' shares, +
      # lovasz_weight x Lovasz-softmax).
      "loss": "cross_entropy",
      "focal_gamma": 2.0,
      "lovasz_weight": 1.0,
      "contrast_weight": 0.1,
      "contrast_start_epoch": 5,
      "prototypes_per_class": 20,
      "projection_dim": 256,
      "momentum": 0.999,
      "sinkhorn_epsilon": 0.05,
      "sinkhorn_iterations": 3,
      "anchors_per_class": 512,
      "temperature": 0.07,
      # Adaptation: Adam 1e-3 with poly decay (the reference's AdamW 0.01 + warm-up cosine
      # was tuned for SalsaNext on range images).
      "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "poly",
                    "power": 0.9},
  })


def no_augmentation(data: ml_collections.ConfigDict) -> None:
  """Turns every geometric augmentation of data.augment off (SoftClu's reference uses none)."""
  data.augment.rotate_z, data.augment.flip = False, False
  data.augment.tilt, data.augment.translate = 0.0, 0.0
  data.augment.scale = (1.0, 1.0)


def clurender_config() -> ml_collections.ConfigDict:
  """CluRender pre-training (method 'clurender'): SoftClu with its reference code's settings
  (J = 64 clusters, both transport terms (xyz and features), Sinkhorn epsilon 1e-3 x 25
  iterations, orthogonality 1e-7 (xyz) and 1e-4 (features), Adam 1e-3 with weight decay 1e-4
  and StepLR(20 epochs, 0.7) over 250 epochs) plus the paper's rendering branch (8 views of
  320x240, r = 4 px, K = 128, eta = 1, RGB+XY transport with lambda 0.5)."""
  return ml_collections.ConfigDict({
      "epochs": 250,
      "clusters": 64,
      # xyz and/or feature: the code's two transport terms; ('xyz',) is the paper's form.
      "terms": ("xyz", "feature"),
      "epsilon": 1e-3,
      "sinkhorn_iterations": 25,
      "xyz_orthogonality": 1e-7,
      "feature_orthogonality": 1e-4,
      # CluRender's rendering branch: N_r posed views per scene and step, each rendered from
      # the colour head and compared with its photo (0 = SoftClu alone: the reference code's
      # training, whose rendering never runs). Scenes without frames train on clustering only.
      "views": 8,
      # rgbxy_ot: the paper's RGB+XY optimal transport (Eq. 17-18, OTT-JAX); sliced_wasserstein:
      # the reference code's SlicedWassersteinDistance (1,000 directions).
      "image_loss": "rgbxy_ot",
      "render": {
          # Photos are resized to (width, height); views are drawn among at most max_views
          # evenly spaced frames per scene (0 = all).
          "image_size": (320, 240), "max_views": 0,
          # Splatting (`splatting.render_view`): disk radius r in pixels, K nearest points
          # per pixel, opacity exponent eta, nearest depth in metres.
          "radius": 4.0, "points_per_pixel": 128, "eta": 1.0, "min_depth": 0.1,
          # Covered pixels compared per view; RGB+XY weight lambda (position) and the
          # transport's absolute epsilon, fixed Sinkhorn iterations and over-relaxation
          # (1 = plain Sinkhorn; 1.5 x 40 iterations is as accurate as 100 plain ones,
          # `image_loss.rgbxy_ot_loss`); the transport's solver ('log': OTT-JAX's
          # log-domain Sinkhorn; 'scaling': the same iterates on stored kernels, 2-3x faster
          # on CPU; 'auto': 'scaling' on CPU, 'log' elsewhere; `transport`); SWD directions.
          "pixels": 2048, "lam": 0.5, "ot_epsilon": 0.01, "ot_iterations": 40,
          "ot_relaxation": 1.5, "ot_solver": "auto", "projections": 1000,
          # L_tot = L_c + weight x sum over views of L_r (the paper: weight 1).
          "weight": 1.0,
      },
      # The reference's AdamW (decoupled decay) becomes Adam with L2 1e-4 (the project's
      # optimizers); StepLR(20, 0.7) per epoch as in the reference.
      "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "step",
                    "decay_every_epochs": 20, "decay_factor": 0.7},
  })


def weak_config() -> ml_collections.ConfigDict:
  """Which training points keep their label (`jaxseg.methods.coarse3d.weak_labels`)."""
  return ml_collections.ConfigDict({
      # Fraction of each scene's points (0.001 = 0.1%, 0.0001 = 0.01%; 1 with by='point' =
      # every label: full supervision).
      "ratio": 0.001,
      # voxel: that many 6 cm voxels, every labelled point in them (the reference); point.
      "by": "voxel",
      "voxel_size": 0.06,
      # Draw this many voxels (or points) per scene instead of the ratio (0 = use ratio).
      "points_per_scene": 0,
      # The draw is seeded by (seed, scene name): the same seed gives the same labels.
      "seed": 0,
      # Train on another run's labels: its weak_labels.npz or work directory ('' = draw).
      "labels_from": "",
  })


def base_config(*, name: str, data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Top-level settings common to every run."""
  config = ml_collections.ConfigDict()
  # prepare | train | eval | infer (jaxseg.modes)
  config.mode = "prepare"
  # The training method (jaxseg.methods): pointdc | growsp | coarse3d | clurender.
  config.method = "pointdc"
  # The network training starts from: '' = the method's own start (PointDC: distillation
  # first); 'random' = a randomly initialised network (PointDC: no distillation, e.g. for data
  # without RGB-D frames); a run's work directory = its newest network.
  config.init = ""
  config.workdir = f"workdirs/{name}"
  config.seed = 2023
  config.data = data
  config.model = {
      "name": "res16fpn18", "out_dim": 128,
      # float32 | bfloat16: compute dtype of the encoder (bfloat16 storage and matmuls with
      # float32 accumulation; parameters, BatchNorm statistics, losses and optimizer state stay
      # float32).
      "dtype": "float32",
      # pairs: kernel maps built on the host as compacted pair lists (the default);
      # dense: built on the device, dense-offset convs (the reference; no host work).
      "engine": "pairs",
      # False: the colour channels of the input voxel features are zeroed (xyz-only input, as
      # CluRender pre-trains; its colour head must then predict colour from geometry).
      "input_colors": True,
      # jnp.searchsorted method of the dense engine: scan (CPU) | sort (often GPU/TPU) | ...
      "search_method": "scan",
  }
  config.teacher = {"name": "fallback", "checkpoint": ""}
  # jit (global view) | shard_map | pmap (legacy adapter); all use every local device.
  config.parallel = {"mode": "jit"}
  config.checkpoint = {"every_steps": 100, "keep": 3}
  config.log_every_steps = 10
  config.cmd = cmd_config()
  config.svc = svc_config()
  config.growsp = growsp_config()
  config.coarse3d = coarse3d_config()
  config.weak = weak_config()
  config.clurender = clurender_config()
  config.eval = eval_config()
  config.infer = {
      # A cloud file (.ply/.pcd/.npy/.txt) or a folder of them (or a dataset root, see format).
      "input": "",
      # A jaxseg.io format: custom (clouds) | scannet | votenet | mmdet3d | s3dis.
      "format": "custom",
      # A model bundle (model.jaxseg) or a trained run's work directory ('' = this workdir).
      "model": "",
      # Where the labelled clouds go ('' = <workdir>/infer).
      "output": "",
      # Test-time super-voxel pooling: each super-voxel (the scan's own, e.g. ScanNet's
      # segs.json, else computed with the run's data.supervoxels settings) takes the class of
      # its mean feature, as evaluation's 'supervoxel_pooled' scores. False: point-wise.
      "pooling": True,
  }
  return config


def short_schedule(config: ml_collections.ConfigDict, *, cmd_epochs: int, warmup_epochs: int,
                   epochs: int, recluster_every: int) -> None:
  """Shortens the reference schedule (for the built-in rooms and the mini set); the step decay
  then happens at each re-clustering instead of every 5 epochs."""
  config.cmd.epochs = cmd_epochs
  config.svc.warmup_epochs = warmup_epochs
  config.svc.epochs = epochs
  config.svc.recluster_every = recluster_every
  config.svc.optimizer.decay_every_epochs = recluster_every


def coarse_voxels(data: ml_collections.ConfigDict) -> None:
  """5 cm voxels (GrowSP's ScanNet setting)."""
  data.voxel_size = 0.05
