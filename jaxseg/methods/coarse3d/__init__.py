"""COARSE3D (BMVC 2022) indoors: a few labelled points, class prototypes, contrastive learning."""

from jaxseg.methods import METHODS, Method
from jaxseg.methods.coarse3d import method

METHODS.register("coarse3d")(Method(
    title="COARSE3D", train=method.train, checkpoint_phases=method.checkpoint_phases,
    network_phases=method.NETWORK_PHASES, config_problems=method.config_problems,
    supervised=True))
