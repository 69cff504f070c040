"""Building blocks shared by the config files (each config file still defines get_config()).

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
      # Points / voxels per scene the jitted steps are compiled for: a scene goes to the
      # smallest bucket that fits; a larger scene is an error unless cropped with max_points.
      # level_fractions: capacities of the encoder's coarse levels 1..4 as fractions of the
      # voxel capacity (ScanNet meshes at 2 cm are sparser than the grid, so level 1 keeps
      # most voxels; halving (0.5, 0.25, ...) suits dense clouds).
      "buckets": {"point_caps": (65536, 131072, 262144, 524288),
                  "voxel_caps": (65536, 131072, 262144, 524288),
                  "level_fractions": (1.0, 0.5, 0.25, 0.125)},
      # Random x-y crop to at most this many points (0 = never crop).
      "max_points": 0,
      # Global batch size (split over processes and devices).
      "batch_size": 4,
      # Grain worker processes (0 = read and augment in the main process).
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


def base_config(*, name: str, data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Top-level settings common to every run."""
  config = ml_collections.ConfigDict()
  config.mode = "prepare"
  config.workdir = f"workdirs/{name}"
  config.seed = 2023
  config.data = data
  config.model = {"name": "res16fpn18", "out_dim": 128}
  config.teacher = {"name": "fallback", "checkpoint": ""}
  return config
