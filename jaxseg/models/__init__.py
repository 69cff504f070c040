"""Flax models: sparse voxel encoders, point encoders and 2D teachers, registered by name.

  encoder_cls = get_encoder(config.model.name)   # e.g. "res16fpn18", "res16unet34", "dgcnn"
"""

from __future__ import annotations

import importlib

from jaxseg.models.registry import ENCODERS, TEACHERS

# Modules whose import registers encoders in ENCODERS.
_ENCODER_MODULES = ("jaxseg.models.res16fpn", "jaxseg.models.res16unet",
                    "jaxseg.models.sampled_dgcnn")


def get_encoder(name: str):
  """The encoder class registered as `name` (KeyError listing the known names otherwise)."""
  for module in _ENCODER_MODULES:
    importlib.import_module(module)
  return ENCODERS.get(name)


def encoder_names() -> list[str]:
  """Every registered encoder name."""
  for module in _ENCODER_MODULES:
    importlib.import_module(module)
  return ENCODERS.names()


__all__ = ["ENCODERS", "TEACHERS", "get_encoder", "encoder_names"]
