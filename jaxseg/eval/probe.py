"""Linear probe: a softmax classifier trained with labels on frozen per-point features.

  probe = train_linear_probe(train_feats, train_labels, num_classes=20, steps=3000)
  preds = probe_predict(probe, val_feats)           # int32, then metrics.confusion_update

The features are standardised with the labelled rows' mean and standard deviation (optional),
then a linear layer is trained with AdamW (cosine-decayed learning rate, decoupled weight decay
on the weight, not the bias) on the mean cross-entropy of minibatches drawn uniformly with
replacement from the labelled rows by a `jax.random` key made from `seed`. The whole run is one
jitted `lax.scan`, so the labelled features must fit on the device: subsample large splits
(e.g. a fixed fraction of every scene's points) before calling.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger

_LOG = get_logger("eval.probe")


class LinearProbe(NamedTuple):
  weight: jax.Array  # f32 [D, C], acting on standardised features
  bias: jax.Array    # f32 [C]
  mean: jax.Array    # f32 [D], subtracted before the layer (0 without standardisation)
  scale: jax.Array   # f32 [D], divides after the mean (1 without standardisation)


def _standardisation(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-dimension mean and std of x f32 [N, D]; constant dimensions get scale 1."""
  mean = jnp.mean(x, axis=0)
  std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=0))
  return mean, jnp.where(std > 1e-6, std, 1.0)


def train_linear_probe(features, labels, num_classes: int, *, steps: int = 2000,
                       lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 4096,
                       seed: int = 0, standardize: bool = True) -> LinearProbe:
  """Trains the probe.

  Args:
    features: f32 [N, D] frozen features (numpy or jax).
    labels: int [N], class in [0, num_classes) or -1 (ignored: not trained on).
    num_classes: C.
    steps / lr / weight_decay / batch_size: AdamW steps, peak learning rate (cosine decay to
      0), decoupled weight decay of the weight matrix, rows per minibatch.
    seed: fixes the minibatch stream (the result is deterministic for a seed).
    standardize: standardise features with the labelled rows' statistics first.
  Returns:
    LinearProbe with weight [D, C], bias [C], mean [D], scale [D] (f32).
  """
  labels = np.asarray(labels).reshape(-1)
  if np.ndim(features) != 2 or np.shape(features)[0] != labels.size:
    raise InputError("train_linear_probe", f"features of shape {np.shape(features)} and "
                     f"{labels.size} labels", "pass features [N, D] and labels [N]")
  if labels.max(initial=-1) >= num_classes or labels.min(initial=0) < -1:
    raise InputError("train_linear_probe", f"labels span [{labels.min()}, {labels.max()}] but "
                     f"num_classes is {num_classes}", "use labels in [0, num_classes) or -1")
  keep = np.flatnonzero(labels >= 0)
  if keep.size == 0:
    raise InputError("train_linear_probe", "every label is -1", "pass labelled points")
  if steps <= 0 or batch_size <= 0:
    raise InputError("train_linear_probe", f"steps {steps} and batch_size {batch_size}",
                     "use positive values")
  x = jnp.asarray(features, jnp.float32)[jnp.asarray(keep, jnp.int32)]
  y = jnp.asarray(labels[keep], jnp.int32)
  dim = x.shape[1]
  if standardize:
    mean, scale = _standardisation(x)
  else:
    mean, scale = jnp.zeros((dim,), jnp.float32), jnp.ones((dim,), jnp.float32)
  x = (x - mean) / scale

  optimizer = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=weight_decay,
                          mask={"weight": True, "bias": False})
  params = {"weight": jnp.zeros((dim, num_classes), jnp.float32),
            "bias": jnp.zeros((num_classes,), jnp.float32)}

  def loss_fn(params, xb, yb):
    logits = xb @ params["weight"] + params["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def run(params, x, y, key):
    def step(carry, index):
      params, opt_state = carry
      rows = jax.random.randint(jax.random.fold_in(key, index), (batch_size,), 0, x.shape[0])
      loss, grads = jax.value_and_grad(loss_fn)(params, x[rows], y[rows])
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)),
                                       jnp.arange(steps))
    return params, losses

  params, losses = run(params, x, y, jax.random.key(seed))
  _LOG.info("linear probe: %d labelled rows, %d dims, %d classes, loss %.4f -> %.4f",
            keep.size, dim, num_classes, float(losses[0]), float(losses[-1]))
  return LinearProbe(params["weight"], params["bias"], mean, scale)


@jax.jit
def probe_predict(probe: LinearProbe, features: jax.Array) -> jax.Array:
  """Class predictions: features f32 [..., D] -> int32 [...] (argmax of the logits)."""
  logits = ((features - probe.mean) / probe.scale) @ probe.weight + probe.bias
  return jnp.argmax(logits, axis=-1).astype(jnp.int32)
