"""The scaling solver against OTT-JAX's log-domain Sinkhorn (the same iterates), on synthetic
and real photo pixel sets, and its fall-back where float32 cannot hold the kernels."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxseg import testing
from jaxseg.methods.clurender import image_loss, transport

_SETTINGS = dict(epsilon=0.01, iterations=40)


def _relative_l1(plan, reference):
  return float(jnp.sum(jnp.abs(plan - reference)) / jnp.sum(jnp.abs(reference)))


def _pixel_sets(kind, m=512, seed=0):
  """f32 [m, 5] rendered and photo pixel sets at the same random positions."""
  rng = np.random.default_rng(seed)
  xy = rng.random((m, 2))
  if kind == "random":
    rendered, photo = rng.random((m, 3)), rng.random((m, 3))
  elif kind == "two_clusters":        # 80/20 red/blue against 30/70: mass must move far
    red, blue = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    rendered = np.where(rng.random(m)[:, None] < 0.8, red, blue)
    photo = np.where(rng.random(m)[:, None] < 0.3, red, blue)
  elif kind == "black_white":
    rendered, photo = np.zeros((m, 3)), np.ones((m, 3))
  else:                               # "dark": the photo at a fifth of its brightness
    photo = rng.random((m, 3))
    rendered = 0.2 * photo
  as_rows = lambda colour: jnp.asarray(np.concatenate([colour, xy], -1), jnp.float32)  # pylint: disable=unnecessary-lambda-assignment
  return as_rows(rendered), as_rows(photo)


@pytest.mark.parametrize("kind", ["random", "two_clusters", "black_white", "dark"])
@pytest.mark.parametrize("relaxation", [1.0, 1.5])
def test_scaling_runs_otts_log_domain_iterates(kind, relaxation):
  rendered, photo = _pixel_sets(kind)
  cost = image_loss.rgbxy_cost(rendered, photo)
  valid = np.arange(len(cost)) < 400                     # 112 empty rows and columns
  mass = jnp.asarray(valid / valid.sum(), jnp.float32)
  cost = jnp.where(valid[:, None] & valid[None], cost, 0.0)
  settings = dict(_SETTINGS, relaxation=relaxation)
  plan, ok = jax.jit(lambda c: transport.scaling_plan(c, mass, mass, **settings))(cost)
  reference = transport.log_domain_plan(cost, mass, mass, **settings)
  assert bool(ok)
  assert _relative_l1(plan, reference) < 1e-4
  assert float(jnp.abs(plan[~valid]).sum() + jnp.abs(plan[:, ~valid]).sum()) == 0.0


def test_scaling_matches_on_real_photo_pixels():
  """2,048 pixels of two real mini-set frames against renders a network might produce early
  (flat grey, noisy, inverted, dark): the same plan as OTT's solver at the defaults."""
  root = testing.require_scannet_mini()
  frames = sorted(glob.glob(os.path.join(root, "posed", "*", "*.jpg")))[::90][:2]
  rng = np.random.default_rng(1)
  mass = jnp.full(2048, 1 / 2048, jnp.float32)
  solve = jax.jit(lambda c: transport.scaling_plan(c, mass, mass, relaxation=1.5,
                                                   **_SETTINGS))
  for frame in frames:
    photo = np.asarray(Image.open(frame).convert("RGB").resize((320, 240)), np.float32) / 255
    pick = rng.choice(320 * 240, 2048, replace=False)
    colour = photo.reshape(-1, 3)[pick]
    xy = np.stack([pick % 320, pick // 320], -1) / 320.0
    for rendered in (np.full_like(colour, 0.5), np.clip(colour + rng.normal(0, 0.2, colour.shape),
                                                        0, 1), 1 - colour, 0.2 * colour):
      cost = image_loss.rgbxy_cost(jnp.asarray(np.concatenate([rendered, xy], -1), jnp.float32),
                                   jnp.asarray(np.concatenate([colour, xy], -1), jnp.float32))
      plan, ok = solve(cost)
      reference = transport.log_domain_plan(cost, mass, mass, relaxation=1.5, **_SETTINGS)
      assert bool(ok) and _relative_l1(plan, reference) < 1e-4, frame


def test_underflow_falls_back_to_the_log_domain_solver():
  """At epsilon 0.003 the dark render's potentials move too far between absorptions for
  float32 kernels: the scaling plan is flagged (it is NaN there) and `transport_plan`
  returns OTT's log-domain plan instead."""
  rendered, photo = _pixel_sets("dark")
  cost = image_loss.rgbxy_cost(rendered, photo)
  mass = jnp.full(len(cost), 1 / len(cost), jnp.float32)
  settings = dict(epsilon=0.003, iterations=40, relaxation=1.5)
  _, ok = transport.scaling_plan(cost, mass, mass, **settings)
  assert not bool(ok)
  plan = jax.jit(lambda c: transport.transport_plan(c, mass, mass, **settings))(cost)
  reference = transport.log_domain_plan(cost, mass, mass, **settings)
  assert bool(jnp.all(jnp.isfinite(plan)))
  np.testing.assert_allclose(np.asarray(plan), np.asarray(reference), rtol=1e-5, atol=1e-12)
  with pytest.raises(ValueError, match="not one of"):
    transport.transport_plan(cost, mass, mass, solver="exact", **settings)


def test_auto_picks_scaling_on_cpu_and_log_elsewhere(monkeypatch):
  assert transport.resolved("auto") == "scaling"           # the tests run on CPU
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert transport.resolved("auto") == "log"
  assert transport.resolved("scaling") == "scaling"
