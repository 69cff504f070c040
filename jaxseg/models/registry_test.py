"""Tests for looking encoders up by name."""

import flax.linen as nn
import pytest

from jaxseg import models


def test_every_documented_encoder_is_registered():
  assert models.encoder_names() == ["dgcnn", "dgcnn_relative", "res16fpn18", "res16unet14",
                                    "res16unet18", "res16unet34"]
  for name in models.encoder_names():
    assert issubclass(models.get_encoder(name), nn.Module)


def test_unknown_encoder_lists_the_known_ones():
  with pytest.raises(KeyError, match="res16fpn18"):
    models.get_encoder("pointnet")
