"""Encoders and decoders: output shapes for every network at several image sizes; dropout; errors."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_config
from tfvae.models import networks
from tfvae.errors import ConfigError

SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 1), (20, 36, 2)]


@pytest.mark.parametrize("network", ["mlp", "gated_mlp", "cnn", "gated_cnn"])
@pytest.mark.parametrize("image_shape", SHAPES)
def test_shapes(network, image_shape):
    config = make_config(model__network__name=network, model__latent_dims=(7,), model__network__hidden=(32,),
                         model__network__conv_channels=(8, 16, 16))
    encoder, decoder = networks.build(config.model, image_shape, encoder_output_size=14)
    x = tf.random.uniform((3,) + image_shape)
    assert encoder(x).shape == (3, 14)
    assert decoder(tf.random.normal((5, 7))).shape == (5,) + image_shape


def test_cnn_decoder_does_not_crop_what_it_need_not():
    config = make_config(model__network__name="cnn", model__network__conv_channels=(8, 16))
    _, decoder = networks.build(config.model, (28, 28, 1), 20)
    assert not any("cropping" in layer.name for layer in decoder.layers)  # 7 -> 14 -> 28 exactly
    _, decoder = networks.build(config.model, (30, 30, 1), 20)
    assert any("cropping" in layer.name for layer in decoder.layers)      # 8 -> 16 -> 32 -> 30


def test_dropout_is_active_only_in_training():
    config = make_config(model__network__dropout=0.5)
    encoder, _ = networks.build(config.model, (28, 28, 1), 20)
    x = tf.random.uniform((4, 28, 28, 1))
    np.testing.assert_allclose(encoder(x, training=False), encoder(x, training=False))
    assert not np.allclose(encoder(x, training=True), encoder(x, training=False))


@pytest.mark.parametrize("override, message", [
    ({"model__network__name": "transformer"}, "valid encoder networks are: broadcast, cnn, gated_cnn, gated_mlp, mlp, pose"),
    ({"model__latent_dims": (0,)}, r"latent_dims=\(0,\)"), ({"model__latent_dims": ()}, "one positive size per latent"),
    ({"model__network__dropout": 1.0}, "dropout=1.0"),
    ({"model__network__name": "cnn", "model__network__conv_channels": ()}, "conv_channels"),
])
def test_bad_config(override, message):
    with pytest.raises(ConfigError, match=message):
        networks.build(make_config(**override).model, (28, 28, 1), 4)


def test_gated_cnn_is_the_vampprior_authors_convolutional_network():
    """Their convHVAE's encoder: gated convolutions 32 (7x7), 32 (3x3, /2), 64 (5x5), 64 (3x3,
    /2), 6 (3x3), flattened to 6 x 7 x 7 = 294 for MNIST; the decoder: gated dense to a 28 x 28
    map, four gated 3x3 convolutions of 64, a 1x1 convolution."""
    config = make_config(model__network__name="gated_cnn", model__network__hidden=(300,),
                         model__latent_dims=(40,))
    encoder, decoder = networks.build(config.model, (28, 28, 1), 80)
    gated = [layer for layer in encoder.layers if isinstance(layer, networks.GatedConv2D)]
    assert [(g.filters, g.kernel_size, g.strides) for g in gated] == list(networks.GATED_CNN_ENCODER)
    assert encoder.layers[-1].kernel.shape == (294, 80)
    x = tf.random.uniform((2, 28, 28, 1))
    h, gate = tf.split(gated[0].conv(x), 2, axis=-1)
    np.testing.assert_allclose(gated[0](x), h * tf.sigmoid(gate), rtol=1e-5, atol=1e-6)
    convs = [layer for layer in decoder.layers if isinstance(layer, networks.GatedConv2D)]
    assert [(g.filters, g.kernel_size) for g in convs] == [(64, 3)] * 4
    assert decoder.layers[-1].kernel_size == (1, 1)
