"""The built-in default dataset, generated on first use into a cache directory.

`ensure_synthetic_scannet()` returns the root of a ScanNet-format dataset (scene folders, split
files, label map). The first call generates it into `$JAXSEG_CACHE/synthetic_scannet_v1` (default
`~/.cache/jaxseg/...`) through a temporary directory renamed into place when complete, so an
interrupted run never leaves a half dataset; later calls find the marker file and reuse it.
Generation holds a lock (`.<name>.lock`), so a concurrent first run waits and reuses the
result, and it removes the temporary folders that killed runs left behind. Non-default
parameters get their own directory (`synthetic_scannet_v1-<hash>`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

from jaxseg.errors import InputError, os_error
from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger
from jaxseg.synthetic.generate import SyntheticConfig, generate_dataset
from jaxseg.synthetic.mesh import MeshConfig

GENERATOR_VERSION = 1
MARKER_NAME = "jaxseg_synthetic.json"
_NAME = f"synthetic_scannet_v{GENERATOR_VERSION}"
_log = get_logger("synthetic")


def default_cache_root() -> str:
  """$JAXSEG_CACHE, else ~/.cache/jaxseg."""
  return os.environ.get("JAXSEG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                        "jaxseg")


def _marker(config: SyntheticConfig, seed: int) -> dict:
  return {"generator": "jaxseg.synthetic", "version": GENERATOR_VERSION, "seed": seed,
          "config": json.loads(json.dumps(dataclasses.asdict(config)))}


def ensure_synthetic_scannet(cache_dir: str | None = None, num_train: int = 8,
                             num_val: int = 3, seed: int = 0, frames_per_scene: int = 20,
                             image_size: tuple[int, int] = (320, 240),
                             spacing: float = 0.035) -> str:
  """Returns the root of the synthetic ScanNet-format dataset, generating it if needed.

  Args:
    cache_dir: parent directory of the dataset (default `default_cache_root()`).
    num_train, num_val: number of scenes in each split.
    seed: generator seed (same seed and parameters -> identical files).
    frames_per_scene: posed RGB-D frames per scene.
    image_size: (width, height) of the colour and depth images.
    spacing: mesh vertex spacing in metres (0.035 gives ~50k-100k vertices per room).
  Returns:
    The dataset root: `<root>/<scene>/...`, `scannetv2_{train,val}.txt`,
    `scannetv2-labels.combined.tsv` (only the generator's categories).
  """
  config = SyntheticConfig(num_train=num_train, num_val=num_val,
                           frames_per_scene=frames_per_scene, color_size=tuple(image_size),
                           depth_size=tuple(image_size), mesh=MeshConfig(spacing=spacing))
  marker = _marker(config, seed)
  name = _NAME
  if marker != _marker(SyntheticConfig(), 0):
    digest = hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{_NAME}-{digest}"
  parent = os.path.abspath(cache_dir or default_cache_root())
  root = os.path.join(parent, name)
  if _is_complete(root, marker):
    return root
  try:
    os.makedirs(parent, exist_ok=True)
  except OSError as e:
    raise os_error(parent, e, reading=False, what="cache folder") from e
  with atomic.exclusive_lock(os.path.join(parent, f".{name}.lock"), what=root):
    atomic.remove_stale(parent, f".{name}.tmp-")
    if _is_complete(root, marker):
      return root  # generated meanwhile by another run
    _generate(parent, name, root, config, seed, marker)
  _log.info("Synthetic dataset ready at %s", root)
  return root


def _is_complete(root: str, marker: dict) -> bool:
  """Whether `root` holds the finished dataset of `marker` (InputError for a foreign folder)."""
  if not os.path.isdir(root):
    return False
  if atomic.read_json(os.path.join(root, MARKER_NAME)) == marker:
    return True
  raise InputError(root, "directory exists but is not a complete synthetic dataset with "
                   "these parameters (marker file missing or different)",
                   "delete the directory; it is regenerated on the next call")


def _generate(parent: str, name: str, root: str, config: SyntheticConfig, seed: int,
              marker: dict) -> None:
  """Generates into a temporary folder of `parent` and renames it to `root`."""
  _log.warning("Generating the built-in synthetic ScanNet-format dataset (%d train + %d val "
               "scenes, seed %d) into %s; this happens once.", config.num_train, config.num_val,
               seed, root)
  tmp = atomic.make_temp_dir(parent, f".{name}.tmp-")
  try:
    generate_dataset(tmp, config, seed)
    with open(os.path.join(tmp, MARKER_NAME), "w") as f:
      json.dump(marker, f, indent=1, sort_keys=True)
    os.rename(tmp, root)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
