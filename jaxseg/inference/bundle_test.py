"""Model bundles: a round trip, and clear errors for other files and other versions."""

import json

import ml_collections
import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.eval.classifier import Classifier
from jaxseg.inference import bundle


def _parts():
  rng = np.random.default_rng(0)
  config = ml_collections.ConfigDict({"model": {"name": "res16fpn18", "out_dim": 4},
                                      "data": {"voxel_size": 0.05, "num_classes": 3}})
  variables = {"params": {"encoder": {"w": rng.normal(size=(2, 4)).astype(np.float32)}},
               "batch_stats": {"encoder": {"mean": np.zeros(4, np.float32)}}}
  classifier = Classifier(rng.normal(size=(3, 4)).astype(np.float32),
                          np.array([2, 0, 1], np.int32), ("a", "b", "c"),
                          np.array([1, 0, 2], np.int32))
  return config, variables, classifier


def test_round_trip(tmp_path):
  config, variables, classifier = _parts()
  path = bundle.write(str(tmp_path / "model.jaxseg"), config, variables, classifier)
  got_config, got_variables, got_classifier = bundle.read(path)
  assert got_config.to_dict() == config.to_dict()
  np.testing.assert_array_equal(got_variables["params"]["encoder"]["w"],
                                variables["params"]["encoder"]["w"])
  np.testing.assert_array_equal(got_classifier.centroids, classifier.centroids)
  np.testing.assert_array_equal(got_classifier.cluster_to_class, classifier.cluster_to_class)
  np.testing.assert_array_equal(got_classifier.pooled_cluster_to_class, [1, 0, 2])
  assert got_classifier.class_names == ("a", "b", "c")
  with np.load(path) as data:   # a bundle written before the pooled match was kept
    fields = {k: v for k, v in data.items() if k != "pooled_cluster_to_class"}
  with open(tmp_path / "older.jaxseg", "wb") as f:
    np.savez(f, **fields)
  older = bundle.read(str(tmp_path / "older.jaxseg"))[2]
  assert older.pooled_cluster_to_class is None
  np.testing.assert_array_equal(older.labels(np.eye(3, 4), pooled=True), older.labels(np.eye(3, 4)))
  unmatched = Classifier(classifier.centroids, None, ("cluster_0", "cluster_1", "cluster_2"))
  bundle.write(path, config, variables, unmatched)
  assert bundle.read(path)[2].cluster_to_class is None   # cluster ids stay cluster ids


def test_other_files_and_versions_are_refused_with_the_fix(tmp_path):
  config, variables, classifier = _parts()
  path = bundle.write(str(tmp_path / "model.jaxseg"), config, variables, classifier)
  with np.load(path) as data:
    fields = dict(data)
  fields["bundle_version"] = np.int32(99)
  newer = tmp_path / "newer.jaxseg"
  with open(newer, "wb") as f:
    np.savez(f, **fields)
  with pytest.raises(InputError, match=r"bundle format version 99 .*reads version 1"):
    bundle.read(str(newer))
  (tmp_path / "notes.txt").write_text(json.dumps({"a": 1}))
  with pytest.raises(InputError, match="cannot be read"):
    bundle.read(str(tmp_path / "notes.txt"))
  np.savez(tmp_path / "other.npz", x=np.zeros(2))
  with pytest.raises(InputError, match="not a jaxseg model bundle"):
    bundle.read(str(tmp_path / "other.npz"))
