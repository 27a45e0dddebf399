"""Encoder and decoder networks (MLP, gated MLP, CNN, gated CNN) for images of any size and channel count.

Encoders map images ``[B, H, W, C]`` to a flat parameter vector ``[B, P]`` for the posterior head;
decoders map latents ``[B, L]`` to per-pixel parameters ``[B, H, W, C]`` for the likelihood head.

References:
  [1] Dauphin, Fan, Auli and Grangier (2017). Language Modeling with Gated Convolutional Networks.
      ICML.
  [2] He, Zhang, Ren and Sun (2015). Delving Deep into Rectifiers: Surpassing Human-Level
      Performance on ImageNet Classification. ICCV.
  [3] Tomczak and Welling (2018). VAE with a VampPrior. AISTATS.
"""
import math
from typing import Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from tfvae import precision as precision_lib
from tfvae.errors import ConfigError
from tfvae.registry import Registry

ENCODERS = Registry("encoder network", field="model.network.name")
DECODERS = Registry("decoder network", field="model.network.name")


def _dense_stack(hidden: Sequence[int], activation: str, dropout: float, name: str):
    layers = []
    for i, units in enumerate(hidden):
        layers.append(keras.layers.Dense(units, activation=activation, name=f"{name}_dense{i}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"{name}_dropout{i}"))
    return layers


def output_dtype():
    """The output layer of every network computes in float32, also under a mixed policy (its
    input is cast up): the posterior's parameters and the likelihood's logits then carry
    float32's precision (bfloat16 keeps 8 bits of mantissa: a logit of 10 would be rounded to
    0.06, and those errors add up over the pixels of log p(x|z))."""
    return {"dtype": "float32"} if keras.mixed_precision.global_policy().compute_dtype != \
        "float32" else {}


@ENCODERS.register("mlp")
def mlp_encoder(config, *, image_shape, output_size) -> keras.Model:
    layers = [keras.layers.InputLayer(image_shape), keras.layers.Flatten()]
    layers += _dense_stack(config.hidden, config.activation, config.dropout, "encoder")
    layers.append(keras.layers.Dense(output_size, name="encoder_out", **output_dtype()))
    return keras.Sequential(layers, name="encoder")


@DECODERS.register("mlp")
def mlp_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    layers = [keras.layers.InputLayer((latent_dim,))]
    layers += _dense_stack(tuple(reversed(config.hidden)), config.activation, config.dropout,
                           "decoder")
    layers += [keras.layers.Dense(math.prod(image_shape), name="decoder_out", **output_dtype()),
               keras.layers.Reshape(image_shape, **output_dtype())]
    return keras.Sequential(layers, name="decoder")


def _conv_geometry(image_shape: Tuple[int, int, int], num_blocks: int):
    """Spatial size after ``num_blocks`` stride-2 'same' convolutions: ceil(H / 2^n)."""
    h, w = image_shape[:2]
    for _ in range(num_blocks):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def he_normal():
    """He et al. (2015) initialisation as in the VampPrior authors' code: N(0, 2 / fan_in), not
    truncated. A new instance per layer (one shared instance would repeat its values)."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")


class GatedDense(keras.layers.Layer):
    """A gated dense layer (Dauphin et al. 2017): h = (W x + b) * sigmoid(V x + c), ``[B, D]`` to
    ``[B, units]``. The two projections are one matmul of width 2 * units."""

    def __init__(self, units: int, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.dense = keras.layers.Dense(2 * self.units,
                                        kernel_initializer=kernel_initializer or he_normal(),
                                        name="linear_and_gate")

    def build(self, input_shape):
        self.dense.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        h, gate = tf.split(self.dense(x), 2, axis=-1)
        return h * tf.sigmoid(gate)

    def get_config(self):
        return super().get_config() | {"units": self.units}


def _gated_stack(hidden: Sequence[int], dropout: float, name: str):
    layers = []
    for i, units in enumerate(hidden):
        layers.append(GatedDense(units, name=f"{name}_gated{i}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"{name}_dropout{i}"))
    return layers


@ENCODERS.register("gated_mlp")
def gated_mlp_encoder(config, *, image_shape, output_size) -> keras.Model:
    """Gated dense layers (``config.hidden``; 300-300 in Tomczak and Welling 2018), then a linear
    layer to the posterior's parameters (its head applies any clamp, e.g. hardtanh_logvar)."""
    layers = [keras.layers.InputLayer(image_shape), keras.layers.Flatten()]
    layers += _gated_stack(config.hidden, config.dropout, "encoder")
    layers.append(keras.layers.Dense(output_size, kernel_initializer=he_normal(), name="encoder_out", **output_dtype()))
    return keras.Sequential(layers, name="encoder")


@DECODERS.register("gated_mlp")
def gated_mlp_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    """Mirror of `gated_mlp_encoder` to per-pixel logits (the likelihood head applies the
    sigmoid of the Bernoulli mean)."""
    layers = [keras.layers.InputLayer((latent_dim,))]
    layers += _gated_stack(tuple(reversed(config.hidden)), config.dropout, "decoder")
    layers += [keras.layers.Dense(math.prod(image_shape), kernel_initializer=he_normal(),
                                  name="decoder_out", **output_dtype()),
               keras.layers.Reshape(image_shape, **output_dtype())]
    return keras.Sequential(layers, name="decoder")


@ENCODERS.register("cnn")
def cnn_encoder(config, *, image_shape, output_size) -> keras.Model:
    """Stride-2 convolutions (``config.conv_channels``), then dense layers (``config.hidden``)."""
    layers = [keras.layers.InputLayer(image_shape)]
    for i, ch in enumerate(config.conv_channels):
        layers.append(keras.layers.Conv2D(ch, config.kernel_size, strides=2, padding="same",
                                          activation=config.activation, name=f"encoder_conv{i}"))
        if config.dropout:
            layers.append(keras.layers.SpatialDropout2D(config.dropout))
    layers.append(keras.layers.Flatten())
    layers += _dense_stack(config.hidden, config.activation, config.dropout, "encoder")
    layers.append(keras.layers.Dense(output_size, name="encoder_out", **output_dtype()))
    return keras.Sequential(layers, name="encoder")


@DECODERS.register("cnn")
def cnn_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    """Mirror of `cnn_encoder`: dense to a ``ceil(H/2^n) x ceil(W/2^n)`` map, ``n`` stride-2
    transposed convolutions, a crop back to ``H x W`` and a 1x1-free 'same' convolution to ``C``."""
    channels = tuple(config.conv_channels)
    h0, w0 = _conv_geometry(image_shape, len(channels))
    layers = [keras.layers.InputLayer((latent_dim,))]
    layers += _dense_stack(tuple(reversed(config.hidden)), config.activation, config.dropout,
                           "decoder")
    layers += [keras.layers.Dense(h0 * w0 * channels[-1], activation=config.activation,
                                  name="decoder_project"),
               keras.layers.Reshape((h0, w0, channels[-1]))]
    for i, ch in enumerate(reversed(channels)):
        layers.append(keras.layers.Conv2DTranspose(ch, config.kernel_size, strides=2,
                                                   padding="same", activation=config.activation,
                                                   name=f"decoder_deconv{i}"))
    crop_h, crop_w = h0 * 2 ** len(channels) - image_shape[0], w0 * 2 ** len(channels) - image_shape[1]
    if crop_h or crop_w:
        layers.append(keras.layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2),
                                               (crop_w // 2, crop_w - crop_w // 2))))
    layers.append(keras.layers.Conv2D(image_shape[-1], config.kernel_size, padding="same",
                                      name="decoder_out", **output_dtype()))
    return keras.Sequential(layers, name="decoder")


class GatedConv2D(keras.layers.Layer):
    """A gated convolution (Dauphin et al. 2017): h = conv_h(x) * sigmoid(conv_g(x)), the two
    convolutions as one of twice the channels."""

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.conv = keras.layers.Conv2D(2 * self.filters, self.kernel_size, strides=self.strides,
                                        padding="same", name="conv_and_gate")

    def build(self, input_shape):
        self.conv.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        h, gate = tf.split(self.conv(x), 2, axis=-1)
        return h * tf.sigmoid(gate)

    def get_config(self):
        return super().get_config() | {"filters": self.filters, "kernel_size": self.kernel_size,
                                       "strides": self.strides}


# The VampPrior authors' convHVAE networks [3] (models/convHVAE_2level.py): (channels, kernel,
# stride) of the gated convolutions of q(z_L|x), of the x-features of q(z_l|x, z_{l+1}), and of
# the decoder after its dense layers (at full resolution, then a 1x1 convolution).
GATED_CNN_ENCODER = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))
GATED_CNN_FEATURES = ((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1))
GATED_CNN_DECODER = ((64, 3, 1),) * 4


def gated_convolutions(spec, name: str):
    return [GatedConv2D(ch, k, s, name=f"{name}_gconv{i}") for i, (ch, k, s) in enumerate(spec)]


@ENCODERS.register("gated_cnn")
def gated_cnn_encoder(config, *, image_shape, output_size) -> keras.Model:
    """The VampPrior authors' convolutional encoder [3]: five gated convolutions (two of stride
    2, down to 6 channels), flattened, then a linear layer to the posterior's parameters.
    (``conv_channels`` and ``kernel_size`` are the cnn network's; this one is fixed.)"""
    layers = [keras.layers.InputLayer(image_shape)]
    layers += gated_convolutions(GATED_CNN_ENCODER, "encoder")
    layers += [keras.layers.Flatten(),
               keras.layers.Dense(output_size, kernel_initializer=he_normal(),
                                  name="encoder_out", **output_dtype())]
    return keras.Sequential(layers, name="encoder")


@DECODERS.register("gated_cnn")
def gated_cnn_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    """The authors' convolutional decoder [3]: gated dense layers (``hidden``, mirrored), a gated
    dense layer to a full-size image map, four gated 3x3 convolutions of 64 channels and a 1x1
    convolution to the likelihood's parameters."""
    h, w, c = image_shape  # c: the likelihood's parameters per pixel (channels x P)
    layers = [keras.layers.InputLayer((latent_dim,))]
    layers += _gated_stack(tuple(reversed(config.hidden)), config.dropout, "decoder")
    layers += [GatedDense(h * w * c, name="decoder_to_image"), keras.layers.Reshape((h, w, c))]
    layers += gated_convolutions(GATED_CNN_DECODER, "decoder")
    layers.append(keras.layers.Conv2D(c, 1, name="decoder_out", **output_dtype()))
    return keras.Sequential(layers, name="decoder")


def validate(model_config) -> None:
    c = model_config.network
    ENCODERS.get(c.name)
    dims = tuple(model_config.latent_dims)
    if not dims or any(int(d) < 1 for d in dims):
        raise ConfigError(f"model.latent_dims={dims} must hold one positive size per latent "
                          "layer, bottom first, e.g. (40,) or (40, 40)")
    if not 0.0 <= c.dropout < 1.0:
        raise ConfigError(f"model.network.dropout={c.dropout} must lie in [0, 1)")
    if any(int(u) < 1 for u in c.hidden):
        raise ConfigError(f"model.network.hidden={tuple(c.hidden)} must hold positive layer "
                          "widths")
    if c.name == "gated_cnn" and not c.hidden:
        raise ConfigError("model.network.hidden=() : the gated_cnn decoder needs at least one "
                          "gated dense layer width (the authors' is (300,))")
    if c.name in ("cnn", "broadcast", "pose") and (
            not c.conv_channels or any(int(u) < 1 for u in c.conv_channels)):
        raise ConfigError(f"model.network.conv_channels={tuple(c.conv_channels)} must hold at "
                          f"least one positive channel count for the {c.name} network")
    if c.kernel_size < 1:
        raise ConfigError(f"model.network.kernel_size={c.kernel_size} must be >= 1")
    for field, name in (("model.network.activation", c.activation),
                        ("model.prior.activation", model_config.prior.activation)):
        try:
            keras.activations.get(name)
        except ValueError:
            raise ConfigError(f"{field}={name!r} is not a Keras activation; use e.g. relu, elu, "
                              "gelu, tanh, swish or leaky_relu") from None


def build(model_config, image_shape, encoder_output_size, params_per_pixel: int = 1,
          precision: str = "float32", extra_inputs: int = 0, label_input: str = "channels"):
    """Returns ``(encoder, decoder)`` for ``model_config.network``; the decoder gives
    ``params_per_pixel`` outputs per pixel and channel, ``[B, H, W, C * params_per_pixel]``.

    ``precision`` (`tfvae.precision`): the networks' compute dtype; under a mixed policy each
    network ends in a float32 layer, so what it hands to the posterior and likelihood heads is
    float32 whatever it computed in. ``extra_inputs`` (a conditional model's K classes): the
    decoder takes that many more inputs; the encoder K more image channels, or, for
    ``label_input='features'``, ``[x, y]`` with ``y`` joined to its flattened features
    (`join_at_flatten`).
    """
    validate(model_config)
    block = model_config.network
    image_shape = tuple(int(d) for d in image_shape)
    output_shape = image_shape[:-1] + (image_shape[-1] * int(params_per_pixel),)
    channels = extra_inputs if label_input == "channels" else 0
    with precision_lib.scope(precision):
        encoder = ENCODERS.create(
            block, image_shape=image_shape[:-1] + (image_shape[-1] + channels,),
            output_size=encoder_output_size)
        decoder = DECODERS.create(block, latent_dim=model_config.latent_dims[0] + extra_inputs,
                                  image_shape=output_shape)
    if precision_lib.is_low(precision):
        for net in (encoder, decoder):
            to_float32(net)
    if extra_inputs and not channels:
        with precision_lib.scope(precision):
            encoder = join_at_flatten(encoder, extra_inputs)
    return encoder, decoder


def join_at_flatten(net: keras.Sequential, size: int) -> keras.Model:
    """``net`` as a model of ``[x, y]``: ``y`` ``[B, size]`` (a one-hot label) is concatenated
    to x's features where ``net`` flattens them, before its dense layers. The layers up to the
    flattening are ``net``'s own; those after it are made again from their configs (the first
    one ``size`` inputs wider)."""
    cut = next(i for i, layer in enumerate(net.layers)
               if isinstance(layer, keras.layers.Flatten))
    x, y = keras.Input(net.input_shape[1:], name="x"), keras.Input((size,), name="y")
    h = x
    for layer in net.layers[:cut + 1]:
        h = layer(h)
    h = keras.layers.Concatenate(name=f"{net.name}_join_y")([h, y])
    for layer in net.layers[cut + 1:]:
        h = type(layer).from_config(layer.get_config())(h)
    return keras.Model([x, y], h, name=net.name)


def call_joined(net: keras.Model, x, y, training=None):
    """``net`` (from `join_at_flatten`) on ``x`` ``[B, ...]`` and ``y`` ``[C * B, size]``, y's
    rows class-major (row ``c * B + b`` labels image ``b``): equal to
    ``net([tf.tile(x, [C, 1, 1, 1]), y])`` at 1/C the cost of the layers up to the join and of
    the x part of the first dense layer after it. With ``[h, y] W = h W_h + y W_y``, h W_h is
    computed once per image and y W_y, of K inputs, once per row. This is what enumerating K
    classes costs less with (M2's q(z|x,y) for unlabelled images). A dropout mask before the
    join is shared by an image's C rows. A net of another shape (a gated layer after the join)
    is called on the tiled batch."""
    layers = [layer for layer in net.layers if not isinstance(layer, keras.layers.InputLayer)]
    cut = next((i for i, layer in enumerate(layers) if layer.name == f"{net.name}_join_y"), None)
    if cut is None or cut + 1 >= len(layers) or type(layers[cut + 1]) is not keras.layers.Dense:
        copies = tf.shape(y)[0] // tf.shape(x)[0]
        return net([tf.tile(x, tf.concat([[copies], tf.ones([tf.rank(x) - 1], tf.int32)], 0)),
                    y], training=training)
    h = x
    for layer in layers[:cut]:
        h = layer(h, training=training)
    dense = layers[cut + 1]
    dtype, units, rows = dense.compute_dtype, dense.units, tf.shape(h)[0]
    kernel = tf.cast(dense.kernel, dtype)
    features = int(h.shape[-1])
    h_part = tf.matmul(tf.cast(h, dtype), kernel[:features])                  # [B, H]
    y_part = tf.matmul(tf.cast(y, dtype), kernel[features:])                  # [C * B, H]
    out = tf.reshape(tf.reshape(y_part, [-1, rows, units]) + h_part, [-1, units])
    if dense.use_bias:
        out = tf.nn.bias_add(out, tf.cast(dense.bias, dtype))
    out = dense.activation(out)
    for layer in layers[cut + 2:]:
        out = layer(out, training=training)
    return out


def to_float32(net: keras.Sequential) -> keras.Sequential:
    """Ends ``net`` in a float32 cast (under a mixed policy its last layers' outputs are
    float32 already; this makes the network's output dtype say so)."""
    net.add(keras.layers.Activation("linear", dtype="float32", name=f"{net.name}_float32"))
    return net
