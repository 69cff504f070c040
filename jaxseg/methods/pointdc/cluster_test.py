"""PointDC's clustering phases: the learning-rate schedules against the reference's."""

import importlib.util
import os

import jax.numpy as jnp
import numpy as np

from jaxseg.methods.pointdc.cluster import phase_optimizer
from jaxseg.train.optim import optimizer_for

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _reference_config():
  spec = importlib.util.spec_from_file_location(
      "cfg", os.path.join(_REPO, "configs", "scannet_svc.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("reference")


def _rates(optimizer, steps_per_epoch, epochs):
  """[epochs, steps] learning rate of every update: SGD's update for a unit gradient, with
  momentum, dampening and weight decay off (momentum would mix the rates of several steps)."""
  optimizer = optimizer.copy_and_resolve_references()
  optimizer.momentum, optimizer.dampening, optimizer.weight_decay = 0.0, 0.0, 0.0
  tx = optimizer_for(optimizer, steps_per_epoch, "svc.optimizer")
  params = jnp.zeros(())
  state = tx.init(params)
  rates = []
  for _ in range(steps_per_epoch * epochs):
    updates, state = tx.update(jnp.ones(()), state, params)
    rates.append(-float(updates))
  return np.asarray(rates).reshape(epochs, steps_per_epoch)


def test_phase_schedules_match_the_reference():
  """train_ScanNet.py: the warm-up's StepLR is built but never stepped (3e-2 for all 30
  epochs); the iterative phase steps StepLR(5, 0.8) once per epoch from 3e-2."""
  svc = _reference_config().svc
  steps = 3
  warmup = _rates(phase_optimizer(svc, "svc_warmup"), steps, svc.warmup_epochs)
  np.testing.assert_allclose(warmup, np.full((30, steps), 3e-2), rtol=1e-6)
  iterative = _rates(phase_optimizer(svc, "svc"), steps, svc.epochs)
  torch_steplr = np.array([3e-2 * 0.8 ** (epoch // 5) for epoch in range(60)])
  np.testing.assert_allclose(iterative, np.repeat(torch_steplr[:, None], steps, 1), rtol=1e-5)
  svc.warmup_lr_decay = True
  decayed = _rates(phase_optimizer(svc, "svc_warmup"), steps, svc.warmup_epochs)
  np.testing.assert_allclose(decayed[:, 0], torch_steplr[:30], rtol=1e-5)
