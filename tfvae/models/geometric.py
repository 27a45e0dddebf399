"""Decoders built with geometric properties (``model.network.name``), each beside a ``cnn``
encoder, so that what the decoder cannot express otherwise goes to chosen latent coordinates:

| name | decoder |
| --- | --- |
| ``broadcast`` | the spatial-broadcast decoder (Watters et al. 2019) [1]: z tiled over an (H + 2n) x (W + 2n) grid, two channels of pixel coordinates in [-1, 1] appended (CoordConv, Liu et al. 2018 [2]), n 'valid' 3 x 3 convolutions (``conv_channels``), a 1 x 1 convolution to the outputs |
| ``pose`` | a coordinate decoder in the style of spatial-VAE (Bepler et al. 2019) [3]: z = (theta, t_x, t_y, z_shape); every pixel's coordinates c in [-1, 1]^2 are turned and shifted, c' = R(theta) c + t, and an MLP (``hidden``) of [c', z_shape] gives that pixel's outputs |

With ``pose`` the canonical image is a function of z_shape alone, and theta, t act on it exactly
as rotation and translation: decoding theta + pi/2 gives the image turned by a quarter turn
(on a square grid), and t moved by one pixel's width (2 / W) the image moved by one pixel. The
three pose coordinates are the first three of z and take the prior of the rest; rotation is in
radians, translation in half-widths of the image.

References:
  [1] Watters, Matthey, Burgess and Lerchner (2019). Spatial Broadcast Decoder: A Simple
      Architecture for Learning Disentangled Representations in VAEs. arXiv:1901.07017.
  [2] Liu, Lehman, Molino, Such, Frank, Sergeev and Yosinski (2018). An intriguing failing of
      convolutional neural networks and the CoordConv solution. NeurIPS.
  [3] Bepler, Zhong, Kelley, Brignole and Berger (2019). Explicitly disentangling image content
      from translation and rotation with spatial-VAE. NeurIPS.
"""
import tensorflow as tf
import tf_keras as keras

from tfvae.models.networks import DECODERS, ENCODERS, cnn_encoder, output_dtype

POSE_DIMS = 3  # theta, t_x, t_y


def pixel_grid(height: int, width: int) -> tf.Tensor:
    """Pixel-centre coordinates ``[H, W, 2]`` (x, y) in [-1, 1], symmetric about 0."""
    ys = (tf.range(height, dtype=tf.float32) + 0.5) / height * 2.0 - 1.0
    xs = (tf.range(width, dtype=tf.float32) + 0.5) / width * 2.0 - 1.0
    return tf.stack(tf.meshgrid(xs, ys), -1)


class SpatialBroadcast(keras.layers.Layer):
    """``z [B, L]`` -> ``[B, H, W, L + 2]``: z at every position, then x and y."""

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, z):
        grid = tf.cast(pixel_grid(self.height, self.width), z.dtype)
        b = tf.shape(z)[0]
        tiled = tf.broadcast_to(z[:, None, None, :], [b, self.height, self.width, z.shape[-1]])
        return tf.concat([tiled, tf.broadcast_to(grid, [b, self.height, self.width, 2])], -1)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class PoseDecoder(keras.layers.Layer):
    """``z [B, L]`` (L > 3) -> ``[B, H, W, C]``: the MLP of [R(theta) c + t, z_shape] at every
    pixel c. Its first layer splits into a per-pixel term of c' and a per-image term of z_shape,
    added (spatial-VAE's economy), so z_shape passes one dense layer per image, not per pixel."""

    def __init__(self, image_shape, hidden=(128, 128), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.out_shape = tuple(int(d) for d in image_shape)
        self.hidden, self.activation = tuple(int(h) for h in hidden) or (128,), activation
        self.coords = keras.layers.Dense(self.hidden[0], name="pose_coordinates")
        self.shape_code = keras.layers.Dense(self.hidden[0], use_bias=False, name="pose_shape")
        self.stack = [keras.layers.Dense(h, activation=activation, name=f"pose_dense{i}")
                      for i, h in enumerate(self.hidden[1:])]
        self.out = keras.layers.Dense(self.out_shape[-1], name="decoder_out", **output_dtype())

    def transformed_grid(self, z):
        """``[B, H, W, 2]``: every pixel's coordinates turned by theta and shifted by t."""
        grid = tf.cast(pixel_grid(*self.out_shape[:2]), z.dtype)
        theta, shift = z[:, 0], z[:, 1:POSE_DIMS]
        cos, sin = tf.cos(theta)[:, None, None], tf.sin(theta)[:, None, None]
        x, y = grid[None, ..., 0], grid[None, ..., 1]
        turned = tf.stack([cos * x - sin * y, sin * x + cos * y], -1)
        return turned + shift[:, None, None, :]

    def call(self, z, training=None):
        h = self.coords(self.transformed_grid(z)) + self.shape_code(z[:, POSE_DIMS:])[:, None,
                                                                                        None, :]
        h = keras.activations.get(self.activation)(h)
        for layer in self.stack:
            h = layer(h)
        return self.out(h)


def _check_pose(latent_dim):
    from tfvae.errors import ConfigError
    if latent_dim <= POSE_DIMS:
        raise ConfigError(f"model.network.name='pose' reads the first {POSE_DIMS} latent "
                          f"coordinates as rotation and translation and needs more for the shape; "
                          f"model.latent_dims=({latent_dim},) is too small: use at least "
                          f"({POSE_DIMS + 1},)")


ENCODERS.register("broadcast")(cnn_encoder)
ENCODERS.register("pose")(cnn_encoder)


@DECODERS.register("broadcast")
def broadcast_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    """The spatial-broadcast decoder: ``len(conv_channels)`` valid 3 x 3 convolutions."""
    n = len(config.conv_channels)
    layers = [keras.layers.InputLayer((latent_dim,)),
              SpatialBroadcast(image_shape[0] + 2 * n, image_shape[1] + 2 * n,
                               name="decoder_broadcast")]
    layers += [keras.layers.Conv2D(ch, 3, padding="valid", activation=config.activation,
                                   name=f"decoder_conv{i}")
               for i, ch in enumerate(config.conv_channels)]
    layers.append(keras.layers.Conv2D(image_shape[-1], 1, name="decoder_out", **output_dtype()))
    return keras.Sequential(layers, name="decoder")


@DECODERS.register("pose")
def pose_decoder(config, *, latent_dim, image_shape) -> keras.Model:
    """The rotation-and-translation decoder (`PoseDecoder`)."""
    _check_pose(latent_dim)
    return keras.Sequential([keras.layers.InputLayer((latent_dim,)),
                             PoseDecoder(image_shape, config.hidden, config.activation,
                                         name="decoder_pose")], name="decoder")
