"""Model registries. Modules register themselves on import:

  @ENCODERS.register("res16fpn18")
  class Res16FPN18(nn.Module): ...
"""

from jaxseg.registry import Registry

ENCODERS = Registry("encoder")   # 3D encoders: voxel networks and point networks.
TEACHERS = Registry("teacher")   # 2D teachers: DINO / DINOv2 ViTs and the no-weights fallback.
