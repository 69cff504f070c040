"""GrowSP (CVPR 2023): unsupervised primitives from growing super-points, no 2D features."""

from jaxseg.methods import METHODS, Method
from jaxseg.methods.growsp import method

METHODS.register("growsp")(Method(
    title="GrowSP", train=method.train, checkpoint_phases=method.checkpoint_phases,
    network_phases=method.NETWORK_PHASES, config_problems=method.config_problems,
    primitives_key="centroids"))
