"""CluRender pre-training on the voxel encoders: SoftClu's soft clustering plus rendering.

One phase ('softclu', `clurender.epochs`). Per scene of the batch the loss is
  L = L_c + weight x sum_v L_r(v)                                   (the paper: weight 1)
  L_c: `softclu.cluster_loss` of SoftClu's cluster head (`models.voxel_net.ClusterHead`,
       `clurender.clusters` = J) on the voxels' centres (unit sphere) and encoder features;
  L_r(v): for each of the `clurender.views` posed views drawn for the scene this step
       (`views.ViewSampler`, in the input workers), the colour head's (`ColorHead`) colours at
       the voxel centres are splatted into the view (`splatting.render_view`) and the
       rendered pixels compared with the photo's (`clurender.image_loss`: the paper's RGB+XY
       transport or the code's sliced Wasserstein distance, `image_loss`).
The loss is averaged over the scenes; scenes without frames (or views=0: SoftClu alone, which
is all the reference code trains) contribute L_c only. Each view renders only the voxels the
host found in its frustum (`view_rows`, padded to a capacity of the batch's ladder). No
augmentation unless `data.augment` asks for it (the reference trains without).

The encoder is then evaluated like every unsupervised network (Hungarian-matched clustering,
super-voxel pooling, linear probe), and `init=<this run>` starts PointDC, GrowSP or COARSE3D
from it.
"""

from __future__ import annotations

import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.data.prepare import scenes_with_poses
from jaxseg.errors import InputError
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.methods import TrainOutcome, with_encoder_of
from jaxseg.methods.clurender import image_loss, softclu, splatting, transport
from jaxseg.methods.clurender.views import ViewSampler
from jaxseg.models.point_voxel import voxel_scene_slots
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.ops import clouds, pooling
from jaxseg.ops.rows import take_rows
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
  if int(c.views) < 0:
    problems.append(f"clurender.views={c.views} must be >= 0 (0: SoftClu alone)")
  if c.image_loss not in IMAGE_LOSSES:
    problems.append(f"clurender.image_loss={c.image_loss!r} must be one of {list(IMAGE_LOSSES)}")
  r = c.render
  if len(tuple(r.image_size)) != 2 or min(int(v) for v in r.image_size) < 1:
    problems.append(f"clurender.render.image_size={tuple(r.image_size)} must be (width, height)")
  if float(r.radius) <= 0 or int(r.points_per_pixel) < 1 or int(r.pixels) < 2:
    problems.append("clurender.render needs radius > 0, points_per_pixel >= 1 and pixels >= 2")
  if not 0.0 <= float(r.lam) <= 1.0 or float(r.ot_epsilon) <= 0 or float(r.weight) < 0:
    problems.append("clurender.render needs 0 <= lam <= 1, ot_epsilon > 0 and weight >= 0")
  # Past 1.5 a fixed count of relaxed iterations can end far from the marginals (at 1.9 the
  # loss reached inf on 2,048 random pixels with 500 valid).
  if not 0.0 < float(r.ot_relaxation) <= 1.5 or int(r.ot_iterations) < 1:
    problems.append(f"clurender.render.ot_relaxation={r.ot_relaxation} must lie in (0, 1.5] "
                    "(1: plain Sinkhorn) and ot_iterations must be >= 1")
  if r.ot_solver not in transport.SOLVERS:
    problems.append(f"clurender.render.ot_solver={r.ot_solver!r} must be one of "
                    f"{list(transport.SOLVERS)}")
  return problems


IMAGE_LOSSES = ("rgbxy_ot", "sliced_wasserstein")


def view_losses(colors: jax.Array, centres: jax.Array, views: dict[str, jax.Array],
                r: ml_collections.ConfigDict, kind: str) -> jax.Array:
  """The image loss of every view of a batch.

  Args:
    colors: f32 [G, C, 3] the colour head's output; centres: f32 [G, C, 3] voxel centres
      (pipeline coordinates); views: the batch's view_* fields ([G, Z, N_r, ...],
      `jaxseg.data.packing`);
    r: the clurender.render config; kind: clurender.image_loss.
  Returns:
    f32 [G, Z, N_r]: L_r of each valid view (0 for invalid ones).

  Views run one at a time (`lax.map`): an invalid view (empty slot, a scene without frames)
  skips its work (`lax.cond`), and each view's render is recomputed in the backward pass
  rather than stored (`jax.checkpoint`, keeping only its transport plan), so the fragments
  and cost matrices of one view are in memory at a time.
  """
  num_voxels = colors.shape[1]
  size = tuple(int(v) for v in r.image_size)
  packs, slots, per_scene = views["view_valid"].shape

  def render_and_compare(view):
    rows, pack = view["view_rows"], view["pack"]
    image, coverage = splatting.render_view(
        take_rows(centres[pack], rows), take_rows(colors[pack], rows), rows < num_voxels,
        view["view_world_to_camera"], view["view_intrinsics"], size, radius=float(r.radius),
        points_per_pixel=int(r.points_per_pixel), eta=float(r.eta),
        min_depth=float(r.min_depth))
    key = jax.random.key(view["view_seed"])
    photo = view["view_images"].astype(jnp.float32) / 255.0
    rendered, real, covered = image_loss.pixel_samples(image, coverage, photo, key,
                                                       int(r.pixels))
    if kind == "rgbxy_ot":
      return image_loss.rgbxy_ot_loss(rendered, real, covered, lam=float(r.lam),
                                      epsilon=float(r.ot_epsilon),
                                      iterations=int(r.ot_iterations),
                                      relaxation=float(r.ot_relaxation),
                                      solver=str(r.ot_solver))
    directions = image_loss.projection_directions(jax.random.fold_in(key, 1),
                                                  int(r.projections))
    return image_loss.sliced_wasserstein(rendered, real, directions, covered)

  def one(view):
    return jax.lax.cond(view["view_valid"], render_and_compare,
                        lambda _: jnp.zeros((), jnp.float32), view)

  flat = {k: v.reshape((packs * slots * per_scene,) + v.shape[3:]) for k, v in views.items()}
  flat["pack"] = jnp.repeat(jnp.arange(packs, dtype=jnp.int32), slots * per_scene)
  policy = jax.checkpoint_policies.save_only_these_names(image_loss.OT_PLAN)
  return jax.lax.map(jax.checkpoint(one, policy=policy), flat).reshape(packs, slots, per_scene)


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
    xyz = clouds.unit_sphere(coords.astype(jnp.float32), valid)
    loss, _ = softclu.cluster_loss(
        logits, xyz, features, valid, epsilon=float(c.epsilon),
        iterations=int(c.sinkhorn_iterations), terms=tuple(c.terms),
        orthogonality=(float(c.xyz_orthogonality), float(c.feature_orthogonality)))
    present = jnp.any(valid)
    return jnp.where(present, loss, 0.0), present

  return jax.vmap(one)(jnp.arange(num_slots, dtype=jnp.int32))


VIEW_FIELDS = ("view_images", "view_world_to_camera", "view_intrinsics", "view_valid",
               "view_rows", "view_seed")


def make_loss_fn(network: Callable[..., nn.Module], c: ml_collections.ConfigDict):
  """The step's loss (`jaxseg.train.parallel`) for the clurender config section `c`;
  `network(axis_name=..., cluster_dim=..., color_head=...)` builds the VoxelNet."""
  render = int(c.views) > 0

  def loss_fn(params, model_state, batch, extra, axis_name):
    del extra
    net = network(axis_name=axis_name, cluster_dim=int(c.clusters), color_head=render)
    out, new_vars = net.apply({"params": params, **model_state}, batch, train=True,
                              mutable=["batch_stats"])
    scene = voxel_scene_slots(batch)
    if "voxel_sampled" in out:   # a point encoder: the loss sees its samples, as the reference's
      scene = jnp.where(out["voxel_sampled"], scene, -1)
    num_slots = batch["scene_index"].shape[1]
    losses, present = jax.vmap(lambda l, f, x, s: scene_losses(l, f, x, s, num_slots, c))(
        out["voxel_cluster_logits"], out["voxel_features"], batch["voxel_coords"], scene)
    count = jnp.sum(present).astype(jnp.float32)
    metrics = {"cluster_loss": jnp.sum(losses)}
    if render:
      num_voxels = out["voxel_features"].shape[1]
      # Voxels sit at the mean of their points (padding points point at row C: dropped).
      centres = pooling.segment_mean(batch["point_coords"], batch["point_to_voxel"],
                                     num_voxels)
      per_view = view_losses(out["voxel_colors"], centres,
                             {k: batch[k] for k in VIEW_FIELDS}, c.render, c.image_loss)
      metrics["render_loss"] = jnp.sum(per_view)
      metrics["rendered_views"] = jnp.sum(batch["view_valid"]).astype(jnp.float32)
      losses = losses + float(c.render.weight) * jnp.sum(per_view, axis=-1)
    return jnp.sum(losses), count, (new_vars, metrics)

  return loss_fn


def view_sampler(ctx: RunContext) -> ViewSampler | None:
  """The training split's view sampler (None with clurender.views = 0); logs how many scenes
  have posed frames. InputError when none has."""
  c = ctx.config.clurender
  if not int(c.views):
    return None
  split = ctx.config.data.train_split
  source = ctx.data.source(split)
  names = ctx.data.handle.posed_scenes(split)
  if names is None:   # a dataset built before it listed them: read every record once
    names = scenes_with_poses(source)
  if not names:
    raise InputError(split, f"none of the {len(source)} training scenes "
                     "has posed RGB-D frames to render into", "prepare the dataset with "
                     "data.with_frames=True (and data.frames_root where the frames live "
                     "apart), or set --config.clurender.views=0 to train SoftClu alone")
  _LOG.info("rendering: %d of %d training scenes have posed frames (%s%s); the others train "
            "on clustering only", len(names), len(source), ", ".join(names[:4]),
            ", ..." if len(names) > 4 else "")
  r = c.render
  return ViewSampler(int(c.views), tuple(int(v) for v in r.image_size), int(r.max_views),
                     float(r.radius), float(r.min_depth))


def train(ctx: RunContext, resume: bool, writer: ScalarWriter,
          validate: trainer.Validate | None = None) -> TrainOutcome:
  """Runs CluRender pre-training (SoftClu alone with clurender.views = 0); returns the
  encoder."""
  config, c = ctx.config, ctx.config.clurender
  render = int(c.views) > 0
  variables, provenance = with_encoder_of(
      config.init, ctx.init_variables(cluster_dim=int(c.clusters), color_head=render))
  views = view_sampler(ctx) if int(c.epochs) else None
  _LOG.info("%s: %d epochs, %d clusters, terms %s, Sinkhorn epsilon %g x %d iterations%s, "
            "parallel mode %s on %d devices", "CluRender" if render else "SoftClu", c.epochs,
            c.clusters, tuple(c.terms), c.epsilon, c.sinkhorn_iterations,
            f"; {c.views} views of {tuple(c.render.image_size)} per scene, {c.image_loss}"
            if render else "; no rendering", config.parallel.mode, jax.device_count())
  fields = ctx.net_fields + ("voxel_coords", "point_scene", "scene_index")
  if render:
    fields += ("point_coords",) + VIEW_FIELDS
  phase = trainer.Phase(
      name=PHASE, epochs=int(c.epochs), optimizer=c.optimizer,
      optimizer_key="clurender.optimizer", loss_fn=make_loss_fn(ctx.net, c),
      fields=tuple(dict.fromkeys(fields)), views=views)
  start = time.perf_counter()
  variables, _ = trainer.run_phase(ctx, phase, variables, resume=resume, writer=writer,
                                   validate=validate)
  rendering = (f"rendering {c.views} views per scene ({c.image_loss})" if render
               else "no rendering")
  provenance["training"] = (f"{'CluRender' if render else 'SoftClu'}, {c.epochs} epochs, "
                            f"{c.clusters} clusters, terms {'+'.join(c.terms)}; {rendering}")
  name = ("CluRender (SoftClu + rendering)" if render
          else "SoftClu (CluRender clustering branch)")
  return TrainOutcome(encoder_variables(variables), name, provenance,
                      {PHASE: time.perf_counter() - start})
