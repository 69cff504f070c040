"""PointDC (ICCV 2023): cross-modal distillation of 2D features into the voxel network
(`distill`), then super-voxel clustering (`cluster`)."""

from jaxseg.methods import METHODS, Method
from jaxseg.methods.pointdc import method

METHODS.register("pointdc")(Method(
    title="PointDC", train=method.train, checkpoint_phases=method.checkpoint_phases,
    network_phases=method.NETWORK_PHASES, config_problems=method.config_problems))
