"""TrainState: creation, one update against numpy, pytree behaviour under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg.train.state import TrainState


def test_create_and_apply_gradients_match_numpy():
  params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
  state = TrainState.create(params, None, optax.sgd(0.5, momentum=0.9))
  assert state.step.dtype == jnp.int32 and int(state.step) == 0 and state.model_state == {}
  assert state.variables().keys() == {"params"}
  grads = {"w": np.full((2, 3), 2.0, np.float32), "b": np.array([1.0, -1.0, 0.0], np.float32)}
  stats = {"batch_stats": {"mean": np.array([0.25], np.float32)}}
  for _ in range(2):
    state = state.apply_gradients(grads, stats)
  # Two heavy-ball steps from a zero trace: p - lr * g, then p - lr * g * (1 + m).
  for name, p in params.items():
    expected = p.astype(np.float64) - 0.5 * grads[name].astype(np.float64) * (1 + 1 + 0.9)
    np.testing.assert_allclose(state.params[name], expected, rtol=1e-6, atol=1e-6)
  assert int(state.step) == 2 and state.model_state is stats
  assert state.variables()["batch_stats"] is stats["batch_stats"]


def test_tx_is_static_and_the_state_passes_through_jit():
  tx = optax.adam(1e-3)
  state = TrainState.create({"w": jnp.ones(3)}, {}, tx)
  leaves = jax.tree.leaves(state)
  assert all(isinstance(leaf, jax.Array) for leaf in leaves)
  assert len(leaves) == 1 + 1 + 3     # step, w, adam count / mu / nu
  out = jax.jit(lambda s: s.apply_gradients({"w": jnp.ones(3)}, {}))(state)
  assert out.tx is tx and int(out.step) == 1
  np.testing.assert_allclose(out.params["w"], 1 - 1e-3, rtol=1e-5)
