"""SoftClu pre-training (CluRender's clustering branch) on the voxel encoders.

One phase ('softclu', `clurender.epochs`): the encoder and SoftClu's cluster head
(`models.voxel_net.ClusterHead`, `clurender.clusters` = J) trained by `softclu.cluster_loss` on
every scene of the batch (its voxels' centres on the unit sphere and their encoder features),
averaged over the scenes. No augmentation unless `data.augment` asks for it (the reference
trains without). The encoder is then evaluated like every unsupervised network (Hungarian-
matched clustering, super-voxel pooling, linear probe), and `init=<this run>` starts PointDC,
GrowSP or COARSE3D from it.

The rendering branch (`splatting`, `image_loss`) is not part of this phase yet: its pieces
are built and tested, but batches do not carry posed frames.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.methods import TrainOutcome, with_encoder_of
from jaxseg.methods.clurender import softclu
from jaxseg.methods.scenes import voxel_scene_slots
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.train import trainer
from jaxseg.train.context import RunContext

_LOG = get_logger("methods.clurender")
PHASE = "softclu"
NETWORK_PHASES = (PHASE,)


def checkpoint_phases(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return (PHASE,) if config.clurender.epochs else ()


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the clurender section."""
  c, problems = config.clurender, []
  if int(c.clusters) < 2:
    problems.append(f"clurender.clusters={c.clusters} must be at least 2")
  terms = tuple(c.terms)
  if not terms or set(terms) - set(softclu.TERMS):
    problems.append(f"clurender.terms={terms} must be a non-empty subset of "
                    f"{list(softclu.TERMS)}")
  if float(c.epsilon) <= 0 or int(c.sinkhorn_iterations) < 1:
    problems.append("clurender.epsilon must be > 0 and clurender.sinkhorn_iterations >= 1")
  return problems


def scene_losses(logits: jax.Array, features: jax.Array, coords: jax.Array, scene: jax.Array,
                 num_slots: int, c: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
  """SoftClu's loss of every scene slot of one pack.

  Args:
    logits: f32 [V, J]; features: f32 [V, D]; coords: [V, 3] voxel coordinates;
    scene: int32 [V] slot of each voxel (-1 padding); num_slots: S.
  Returns:
    loss f32 [S] (0 for an empty slot), present bool [S].
  """

  def one(slot):
    valid = scene == slot
    xyz = softclu.unit_sphere(coords.astype(jnp.float32), valid)
    loss, _ = softclu.cluster_loss(
        logits, xyz, features, valid, epsilon=float(c.epsilon),
        iterations=int(c.sinkhorn_iterations), terms=tuple(c.terms),
        orthogonality=(float(c.xyz_orthogonality), float(c.feature_orthogonality)))
    present = jnp.any(valid)
    return jnp.where(present, loss, 0.0), present

  return jax.vmap(one)(jnp.arange(num_slots, dtype=jnp.int32))


def _loss_fn(ctx: RunContext):
  c = ctx.config.clurender

  def loss_fn(params, model_state, batch, extra, axis_name):
    del extra
    net = ctx.net(axis_name=axis_name, cluster_dim=int(c.clusters))
    out, new_vars = net.apply({"params": params, **model_state}, batch, train=True,
                              mutable=["batch_stats"])
    scene = voxel_scene_slots(batch)
    num_slots = batch["scene_index"].shape[1]
    losses, present = jax.vmap(lambda l, f, x, s: scene_losses(l, f, x, s, num_slots, c))(
        out["voxel_cluster_logits"], out["voxel_features"], batch["voxel_coords"], scene)
    count = jnp.sum(present).astype(jnp.float32)
    return jnp.sum(losses), count, (new_vars, {})

  return loss_fn


def train(ctx: RunContext, resume: bool, writer: ScalarWriter,
          validate: trainer.Validate | None = None) -> TrainOutcome:
  """Runs SoftClu pre-training; returns the encoder."""
  config, c = ctx.config, ctx.config.clurender
  variables, provenance = with_encoder_of(config.init,
                                          ctx.init_variables(cluster_dim=int(c.clusters)))
  _LOG.info("SoftClu: %d epochs, %d clusters, terms %s, Sinkhorn epsilon %g x %d iterations, "
            "parallel mode %s on %d devices", c.epochs, c.clusters, tuple(c.terms), c.epsilon,
            c.sinkhorn_iterations, config.parallel.mode, jax.device_count())
  phase = trainer.Phase(
      name=PHASE, epochs=int(c.epochs), optimizer=c.optimizer,
      optimizer_key="clurender.optimizer", loss_fn=_loss_fn(ctx),
      fields=tuple(dict.fromkeys(ctx.net_fields + ("voxel_coords", "point_scene",
                                                    "scene_index"))))
  start = time.perf_counter()
  variables, _ = trainer.run_phase(ctx, phase, variables, resume=resume, writer=writer,
                                   validate=validate)
  provenance["training"] = (f"SoftClu, {c.epochs} epochs, {c.clusters} clusters, terms "
                            f"{'+'.join(c.terms)}; no rendering")
  return TrainOutcome(encoder_variables(variables), "SoftClu (CluRender clustering branch)",
                      provenance, {PHASE: time.perf_counter() - start})
