"""Linear probe against scikit-learn's logistic regression on Gaussian blobs."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from jaxseg.errors import InputError
from jaxseg.eval.probe import probe_predict, train_linear_probe

_CLASSES = 5


def _split(seed=0):
  x, y = make_blobs(n_samples=6000, n_features=8, centers=_CLASSES, cluster_std=4.0,
                    center_box=(-6.0, 6.0), random_state=seed)
  x = x * np.linspace(0.2, 20.0, 8) + 50.0  # unequal scales and an offset: standardisation matters
  return x[:4000].astype(np.float32), y[:4000], x[4000:].astype(np.float32), y[4000:]


def test_probe_accuracy_matches_sklearn_logistic_regression():
  x_train, y_train, x_test, y_test = _split()
  reference = LogisticRegression(max_iter=5000).fit(
      (x_train - x_train.mean(0)) / x_train.std(0), y_train)
  ref_acc = (reference.predict((x_test - x_train.mean(0)) / x_train.std(0)) == y_test).mean()
  probe = train_linear_probe(x_train, y_train, _CLASSES, steps=1500, lr=5e-2,
                             weight_decay=1e-4, batch_size=512, seed=0)
  preds = np.asarray(probe_predict(probe, jnp.asarray(x_test)))
  acc = (preds == y_test).mean()
  assert preds.dtype == np.int32 and preds.shape == y_test.shape
  assert abs(acc - ref_acc) < 0.02, (acc, ref_acc)
  assert acc > 0.6 and ref_acc > 0.6  # chance is 0.2
  # Standardisation uses float64-exact statistics of the training rows.
  np.testing.assert_allclose(np.asarray(probe.mean), x_train.astype(np.float64).mean(0),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(probe.scale), x_train.astype(np.float64).std(0),
                             rtol=1e-4)


def test_ignored_labels_do_not_change_the_probe_and_seed_fixes_it():
  x_train, y_train, _, _ = _split(1)
  rng = np.random.default_rng(0)
  junk = rng.normal(size=(700, 8)).astype(np.float32) * 1e3
  x_all = np.concatenate([x_train[:2000], junk, x_train[2000:]])
  y_all = np.concatenate([y_train[:2000], np.full(700, -1), y_train[2000:]])
  kwargs = {"steps": 100, "lr": 5e-2, "batch_size": 256, "seed": 3}
  clean = train_linear_probe(x_train, y_train, _CLASSES, **kwargs)
  with_ignored = train_linear_probe(x_all, y_all, _CLASSES, **kwargs)
  for a, b in zip(clean, with_ignored):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  other = train_linear_probe(x_train, y_train, _CLASSES, **{**kwargs, "seed": 4})
  assert not np.array_equal(np.asarray(clean.weight), np.asarray(other.weight))


def test_without_standardisation_and_bad_inputs():
  x_train, y_train, _, _ = _split(2)
  probe = train_linear_probe(x_train, y_train, _CLASSES, steps=10, standardize=False)
  np.testing.assert_array_equal(np.asarray(probe.mean), 0)
  np.testing.assert_array_equal(np.asarray(probe.scale), 1)
  assert probe.weight.shape == (8, _CLASSES) and probe.bias.shape == (_CLASSES,)
  with pytest.raises(InputError, match="num_classes"):
    train_linear_probe(x_train, y_train, 3)
  with pytest.raises(InputError, match="every label is -1"):
    train_linear_probe(x_train, np.full(len(x_train), -1), _CLASSES)
  with pytest.raises(InputError, match="features of shape"):
    train_linear_probe(x_train[:10], y_train, _CLASSES)
