"""Approximate posteriors q(z|x) as `tfp.layers.DistributionLambda` heads over encoder outputs.

A head maps encoder parameters ``[..., P]`` (``P = head.params_size``) to a distribution with
batch shape ``[...]`` and event shape ``[L]``.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd, tfpl = tfp.distributions, tfp.layers

POSTERIORS = Registry("posterior")
SCALE_FUNCTIONS = {"softplus": tf.math.softplus, "exp": tf.math.exp}
MIN_SCALE = 1e-6


@POSTERIORS.register("gaussian")
class GaussianPosterior(tfpl.DistributionLambda):
    """Mean-field Gaussian q(z|x) = N(mu, diag(sigma^2)), sigma = softplus(s) or exp(s) (+1e-6).

    Built as ``Independent(Normal)``: reparameterised samples, and analytic KL against any
    prior for which TFP registers one (e.g. the standard normal).
    """

    def __init__(self, latent_dim: int, scale: str = "softplus", **kwargs):
        if scale not in SCALE_FUNCTIONS:
            raise ConfigError(f"model.posterior_scale={scale!r}; valid scales are: "
                              f"{', '.join(sorted(SCALE_FUNCTIONS))}")
        scale_fn = SCALE_FUNCTIONS[scale]
        self.latent_dim = latent_dim
        self.params_size = 2 * latent_dim

        def make(params):
            loc, raw_scale = tf.split(params, 2, axis=-1)
            return tfd.Independent(tfd.Normal(loc, scale_fn(raw_scale) + MIN_SCALE),
                                   reinterpreted_batch_ndims=1)

        super().__init__(make, convert_to_tensor_fn=tfd.Distribution.mean, **kwargs)


def build(model_config):
    return POSTERIORS.build(model_config.posterior, model_config.latent_dim,
                            scale=model_config.posterior_scale, name="posterior")
