"""CluRender (IJCV 2024) / SoftClu (BMVC 2022): unsupervised pre-training by Sinkhorn soft
clustering plus differentiable point rendering into the scenes' posed frames (`method`); the
loss, renderer, image losses and view sampling are its modules."""

from jaxseg.methods import METHODS, Method
from jaxseg.methods.clurender import method

METHODS.register("clurender")(Method(
    title="SoftClu / CluRender", train=method.train,
    checkpoint_phases=method.checkpoint_phases, network_phases=method.NETWORK_PHASES,
    config_problems=method.config_problems))
