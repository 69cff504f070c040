"""Optimizer settings in epochs (as configs write them) -> an optax transformation in steps."""

from __future__ import annotations

import ml_collections
import optax

from jaxseg.train.optim import make_optimizer


def optimizer_for(cfg: ml_collections.ConfigDict, steps_per_epoch: int, where: str
                  ) -> optax.GradientTransformation:
  """cfg: the keys of `jaxseg.train.optim.make_optimizer` with decay_every_epochs in place of
  decay_every (updates); `where` names the config section in errors."""
  values = cfg.to_dict()
  every_epochs = values.pop("decay_every_epochs")
  values["decay_every"] = max(1, int(every_epochs) * steps_per_epoch)
  return make_optimizer(values, where)
