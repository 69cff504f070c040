"""A trained model in one file: `<workdir>/model.jaxseg`, written by a run's final evaluation.

A bundle is a numpy .npz (zip) archive that needs no work directory: the run's resolved config
(JSON), the network variables (flax msgpack), the classifier (class centroids, cluster -> class
maps, class names; `jaxseg.eval.classifier`) and what wrote it (the bundle format version and
the jaxseg version). The network's input normalisation is part of the config (voxel size) and
of the network (its batch-norm statistics). `jaxseg.load(path)` and mode `infer` read a bundle
or a run's work directory alike.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flax import serialization
import ml_collections
import numpy as np

import jaxseg
from jaxseg import distributed
from jaxseg.errors import InputError
from jaxseg.io import atomic
from jaxseg.eval import classifier as classifier_lib
from jaxseg.eval.classifier import Classifier

FORMAT = "jaxseg-bundle"
VERSION = 1
SUFFIX = ".jaxseg"


def write(path: str, config: ml_collections.ConfigDict, variables: Any,
          classifier: Classifier) -> str:
  """Writes the bundle atomically (a .npz archive, whatever the file's suffix); returns path."""
  return atomic.write_npz(path, {
      "format": np.str_(FORMAT), "bundle_version": np.int32(VERSION),
      "jaxseg_version": np.str_(jaxseg.__version__),
      "config": np.str_(json.dumps(config.to_dict())),
      "variables": np.frombuffer(serialization.msgpack_serialize(_numpy_tree(variables)),
                                 np.uint8),
      "centroids": classifier.centroids.astype(np.float32),
      "cluster_to_class": _optional(classifier.cluster_to_class),
      "pooled_cluster_to_class": _optional(classifier.pooled_cluster_to_class),
      "class_names": np.asarray(list(classifier.class_names))})


def export_run(workdir: str, config: ml_collections.ConfigDict, variables: Any) -> str | None:
  """Writes `<workdir>/model.jaxseg` from a run's network variables and the classifier its
  final evaluation just saved; None (nothing written) when there is no classifier or this is
  not the main process of a multi-process run."""
  found = classifier_lib.load(workdir) if distributed.is_main() else None
  if found is None:
    return None
  return write(os.path.join(workdir, "model" + SUFFIX), config, variables, found)


def read(path: str) -> tuple[ml_collections.ConfigDict, Any, Classifier]:
  """(config, network variables, classifier) of a bundle; InputError naming the file for one
  that is not a bundle, is damaged, or was written in another bundle format version."""
  try:
    with np.load(path, allow_pickle=False) as data:
      if "format" not in data or str(data["format"]) != FORMAT:
        raise InputError(path, "not a jaxseg model bundle",
                         "pass a model.jaxseg written by a run's evaluation, or a run's "
                         "work directory")
      version = int(data["bundle_version"])
      if version != VERSION:
        raise InputError(path, f"bundle format version {version} (written by jaxseg "
                         f"{data['jaxseg_version']}); this jaxseg {jaxseg.__version__} reads "
                         f"version {VERSION}", "export it again with this version: "
                         "--config.mode=eval on the run's work directory")
      config = ml_collections.ConfigDict(json.loads(str(data["config"])))
      variables = serialization.msgpack_restore(data["variables"].tobytes())
      classifier = Classifier(
          data["centroids"].astype(np.float32), _read_optional(data, "cluster_to_class"),
          tuple(str(n) for n in data["class_names"]),
          _read_optional(data, "pooled_cluster_to_class"))
  except InputError:
    raise
  except (OSError, ValueError, KeyError, EOFError) as error:
    raise InputError(path, f"the model bundle cannot be read ({error})",
                     "export it again (--config.mode=eval on the run's work directory)"
                     ) from error
  return config, variables, classifier


def _optional(mapping: np.ndarray | None) -> np.ndarray:
  """A cluster -> class map as stored: int32 [K], or [0] for none."""
  return np.full(0, -1, np.int32) if mapping is None else np.asarray(mapping, np.int32)


def _read_optional(data, key: str) -> np.ndarray | None:
  """The stored map `key`, None when it is empty or (bundles older than it) absent."""
  if key not in data or not data[key].size:
    return None
  return data[key].astype(np.int32)


def _numpy_tree(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {k: _numpy_tree(v) for k, v in tree.items()}
  return np.asarray(tree)
