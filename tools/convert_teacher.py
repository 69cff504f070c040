"""Converts an official DINO/DINOv2 checkpoint to a flax msgpack parameter file (no torch).

  python tools/convert_teacher.py --checkpoint dino_deitsmall8_pretrain.pth \
      --arch vit_small_patch8 --out dino_vits8.msgpack

Archs: vit_small_patch8, vit_small_patch16 (DINO), vit_small_patch14_dinov2,
vit_small_patch14_reg4_dinov2 (DINOv2 .pth or Hugging Face model.safetensors). The output
loads with `build_teacher(<teacher>, "out.msgpack")` exactly like the original file.
"""

from __future__ import annotations

import argparse

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger, setup_logging
from jaxseg.models.vit import ARCHS
from jaxseg.teachers import checkpoints


def convert(checkpoint: str, arch: str, out: str) -> None:
  """Reads `checkpoint`, checks it is `arch`, writes `out` (flax msgpack)."""
  expected = ARCHS[arch]
  params, config = checkpoints.load_vit_params(checkpoint, expected.num_heads)
  for field in ("patch_size", "embed_dim", "layerscale", "num_register_tokens", "depth"):
    if getattr(config, field) != getattr(expected, field):
      raise InputError(checkpoint, f"checkpoint has {field}={getattr(config, field)}, "
                       f"{arch} has {getattr(expected, field)}",
                       f"pick the matching --arch from {sorted(ARCHS)}")
  checkpoints.save_converted(out, params, config)
  get_logger("convert_teacher").info("wrote %s (%s, %d blocks)", out, arch, config.depth)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", required=True,
                      help="official .pth or Hugging Face model.safetensors")
  parser.add_argument("--arch", required=True, choices=sorted(ARCHS))
  parser.add_argument("--out", required=True, help="output .msgpack")
  args = parser.parse_args(argv)
  setup_logging()
  convert(args.checkpoint, args.arch, args.out)


if __name__ == "__main__":
  main()
