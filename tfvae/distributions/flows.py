"""Building blocks shared by the normalising flows of priors (`tfvae.distributions.priors.RealNVPPrior`) and
posteriors (`tfvae.distributions.posteriors.RealNVPPosterior`).

References:
  [1] Dinh, Sohl-Dickstein and Bengio (2017). Density estimation using Real NVP. ICLR.
"""
import tensorflow as tf
import tf_keras as keras


class CouplingNet(keras.layers.Layer):
    """The ``shift_and_log_scale_fn`` of a RealNVP affine coupling [1]: the unchanged part
    x_a ``[..., d]`` (and a conditioning context ``[..., C]``, if any) -> ``(shift, log_scale)``
    ``[..., D - d]``. Log-scales are bounded by tanh for stable training; the output layer
    starts at zero, so every coupling starts as the identity."""

    def __init__(self, hidden, output_units: int, activation="elu", **kwargs):
        super().__init__(**kwargs)
        # ``body`` and ``out`` are the checkpoints' object paths: keep their names.
        self.body = [keras.layers.Dense(u, activation=activation) for u in hidden]
        self.out = keras.layers.Dense(2 * output_units, kernel_initializer="zeros")

    def call(self, x, context=None):
        h = x if context is None else tf.concat([x, context], -1)
        for layer in self.body:
            h = layer(h)
        shift, log_scale = tf.split(self.out(h), 2, axis=-1)
        return shift, tf.tanh(log_scale)
