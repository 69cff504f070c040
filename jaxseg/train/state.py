"""The train state every stage updates: step, params, model state and optimizer state."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  """Everything a training step reads and writes, as one pytree (tx is static).

  Attributes:
    step: int32 [] number of updates applied so far.
    params: the differentiated parameters (a flax 'params' collection).
    model_state: the other mutable flax collections, e.g. {'batch_stats': ...}; may be {}.
    opt_state: the optax state of `tx`.
    tx: the optax transformation (static: part of the tree structure, not a leaf).
  """
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: optax.OptState
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, params: Any, model_state: Any,
             tx: optax.GradientTransformation) -> "TrainState":
    """Step 0, fresh optimizer state; model_state None means {}."""
    return cls(step=jnp.zeros([], jnp.int32), params=params,
               model_state={} if model_state is None else model_state,
               opt_state=tx.init(params), tx=tx)

  def variables(self) -> dict[str, Any]:
    """The flax variables {'params': params, **model_state} for `module.apply`."""
    return {"params": self.params, **self.model_state}

  def apply_gradients(self, grads: Any, model_state: Any) -> "TrainState":
    """One optimizer update with `grads` (same tree as params); stores `model_state`."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        model_state=model_state, opt_state=opt_state)
