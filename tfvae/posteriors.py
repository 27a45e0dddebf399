"""Approximate posteriors q(z|x) as `tfp.layers.DistributionLambda` heads over encoder outputs.

A head maps encoder parameters ``[..., P]`` (``P = head.params_size``) to a distribution with
batch shape ``[...]`` and event shape ``[L]``.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd, tfpl = tfp.distributions, tfp.layers

POSTERIORS = Registry("posterior", field="model.posterior")
def _hardtanh_logvar(raw):
    """sigma = exp(log_var / 2) with log_var = hardtanh(raw) in [-6, 2], as the VampPrior authors'
    encoder: the variance stays in [e^-6, e^2] and the gradient stops outside that range."""
    return tf.exp(0.5 * tf.clip_by_value(raw, -6.0, 2.0))


SCALE_FUNCTIONS = {"softplus": tf.math.softplus, "exp": tf.math.exp,
                   "hardtanh_logvar": _hardtanh_logvar}
MIN_SCALE = 1e-6


@POSTERIORS.register("gaussian")
class GaussianPosterior(tfpl.DistributionLambda):
    """Mean-field Gaussian q(z|x) = N(mu, diag(sigma^2)), sigma = softplus(s), exp(s), or
    exp(hardtanh(s) / 2) (``hardtanh_logvar``: s is a log-variance clamped to [-6, 2]); + 1e-6.

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


@POSTERIORS.register("mog")
class MixturePosterior(tfpl.DistributionLambda):
    """Mixture of K mean-field Gaussians, q(z|x) = sum_k pi_k(x) N(mu_k(x), diag sigma_k(x)^2),
    with ``params_size = K + 2 K L`` encoder outputs.

    Trainable three ways: ``score_function`` for everything; ``reparameterized`` through TFP's
    implicit reparameterisation of the mixture (``reparameterize=True``); or ``hybrid`` (score
    function for the component choice, path-wise within the component). KL to any prior is
    Monte Carlo (no closed form for a mixture).
    """

    def __init__(self, latent_dim: int, num_components: int = 5, scale: str = "softplus",
                 reparameterize: bool = False, **kwargs):
        if scale not in SCALE_FUNCTIONS:
            raise ConfigError(f"model.posterior_scale={scale!r}; valid scales are: "
                              f"{', '.join(sorted(SCALE_FUNCTIONS))}")
        if num_components < 1:
            raise ConfigError(f"model.posterior_components={num_components} must be >= 1")
        scale_fn = SCALE_FUNCTIONS[scale]
        self.latent_dim, self.num_components = latent_dim, num_components
        self.params_size = num_components * (1 + 2 * latent_dim)
        k, d = num_components, latent_dim

        def make(params):
            lead = tf.shape(params)[:-1]
            logits = params[..., :k]
            loc, raw_scale = tf.split(params[..., k:], 2, axis=-1)
            shape = tf.concat([lead, [k, d]], 0)
            components = tfd.Independent(
                tfd.Normal(tf.reshape(loc, shape), scale_fn(tf.reshape(raw_scale, shape)) + MIN_SCALE),
                reinterpreted_batch_ndims=1)
            return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components,
                                         reparameterize=reparameterize)

        super().__init__(make, convert_to_tensor_fn=tfd.Distribution.mean, **kwargs)


def build(model_config):
    name = model_config.posterior
    if name == "mog":
        return POSTERIORS.build(name, model_config.latent_dim,
                                num_components=model_config.posterior_components,
                                scale=model_config.posterior_scale,
                                reparameterize=model_config.posterior_reparameterize,
                                name="posterior")
    return POSTERIORS.build(name, model_config.latent_dim, scale=model_config.posterior_scale,
                            name="posterior")
