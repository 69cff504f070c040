"""CluRender (IJCV 2024) / SoftClu (BMVC 2022): unsupervised pre-training by Sinkhorn soft
clustering; the differentiable point renderer and image losses of its rendering branch."""

from jaxseg.methods import METHODS, Method
from jaxseg.methods.clurender import method

METHODS.register("clurender")(Method(
    title="SoftClu / CluRender", train=method.train,
    checkpoint_phases=method.checkpoint_phases, network_phases=method.NETWORK_PHASES,
    config_problems=method.config_problems))
