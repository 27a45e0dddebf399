"""The geometric decoders (`tfvae.models.geometric`): their shapes, and the pose decoder's
defining property, that theta and t act on its image exactly as rotation and translation."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import make_config
from tfvae.errors import ConfigError
from tfvae.models import builder, geometric


def _decoder(name, image_shape=(16, 16, 1), latent=6, **network):
    config = make_config(model__network__name=name, model__latent_dims=(latent,),
                         **{f"model__network__{k}": v for k, v in network.items()})
    keras.utils.set_random_seed(0)
    return builder.build(config, image_shape).decoder


def test_broadcast_decoder_sees_every_position_and_its_coordinates():
    dec = _decoder("broadcast", (20, 12, 1), conv_channels=(8, 8, 8))
    z = tf.random.stateless_normal([3, 6], [1, 2])
    assert dec(z).shape == (3, 20, 12, 1)
    tiled = geometric.SpatialBroadcast(4, 5)(z)
    assert tiled.shape == (3, 4, 5, 8)
    np.testing.assert_array_equal(tiled[:, 2, 3, :6], z)          # z at every position
    np.testing.assert_allclose(tiled[0, :, :, 6:], geometric.pixel_grid(4, 5))
    assert float(tiled[0, 0, 0, 6]) == pytest.approx(-0.8) and float(tiled[0, 3, 4, 7]) == \
        pytest.approx(0.75)


def test_pose_decoder_turns_and_moves_its_image_exactly():
    dec = _decoder("pose", (16, 16, 1), hidden=(32, 32))
    rng = np.random.default_rng(3)
    z = tf.constant(np.concatenate([[[0.3, 0.05, -0.1]], rng.normal(size=(1, 3))], 1),
                    tf.float32)
    base = dec(z).numpy()[0, ..., 0]
    quarter = dec(z + tf.constant([[np.pi / 2, 0, 0, 0, 0, 0]], tf.float32)).numpy()[0, ..., 0]
    # R(theta + pi/2) c = R(theta) (R(pi/2) c): the image at pixel c is the old one at R(pi/2) c,
    # a quarter turn of the square grid (x, y) -> (-y, x)
    np.testing.assert_allclose(quarter, np.rot90(base, k=1), atol=1e-4)
    assert not np.allclose(quarter, base, atol=1e-2)
    # theta = 0: t moved by one pixel's width moves the image by one pixel
    z0 = z * tf.constant([[0, 1, 1, 1, 1, 1]], tf.float32)
    image = dec(z0).numpy()[0, ..., 0]
    moved = dec(z0 + tf.constant([[0, 2 / 16, 0, 0, 0, 0]], tf.float32)).numpy()[0, ..., 0]
    np.testing.assert_allclose(moved[:, :-1], image[:, 1:], atol=1e-4)
    # the shape code alone changes the canonical image
    other = dec(z0 + tf.constant([[0, 0, 0, 1.0, 0, 0]], tf.float32)).numpy()[0, ..., 0]
    assert not np.allclose(other, image, atol=1e-3)


def test_pose_decoder_needs_a_shape_code():
    with pytest.raises(ConfigError, match="pose.*at least"):
        _decoder("pose", latent=3)
