"""Objectives and their gradient estimators, chosen by name (``config.estimator``).

An estimator maps ``(model, x, beta)`` to `Terms`: the loss whose gradient the model applies,
and the per-example ELBO decomposition

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) = -(D + R),

with distortion ``D = -E_q log p(x|z)`` and rate ``R = KL(q||p)`` (analytic where TFP registers
the KL, else the Monte Carlo estimate ``mean_s [log q(z_s|x) - log p(z_s)]``).
The model does not know which estimator it has: it asks for terms and applies gradients.
"""
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd = tfp.distributions

ESTIMATORS = Registry("estimator")


class Terms(NamedTuple):
    """Output of an estimator. ``loss`` is a scalar; the rest are per example, shape ``[B]``."""

    loss: tf.Tensor
    elbo: tf.Tensor
    distortion: tf.Tensor
    rate: tf.Tensor


class Estimator:
    """Base class. ``check(model)`` rejects combinations that cannot work, at build time."""

    def check(self, model) -> None:
        pass

    def __call__(self, model, x, beta=1.0, training=False) -> Terms:
        raise NotImplementedError


@ESTIMATORS.register("reparameterized")
class Reparameterized(Estimator):
    """Path-wise gradient of the (beta-weighted) ELBO with ``S = model.num_samples`` samples

        loss = mean_b [ D_b + beta * R_b ],   D_b ~= -1/S sum_s log p(x_b | z_s),
        z_s = mu(x_b) + sigma(x_b) * eps_s  (the reparameterisation trick).
    """

    def check(self, model) -> None:
        if model.posterior_head_reparameterization_type() != tfd.FULLY_REPARAMETERIZED:
            raise ConfigError(
                f"estimator 'reparameterized' needs a reparameterisable posterior; "
                f"model.posterior={model.posterior_name!r} is not. Choose a score-function "
                "estimator or a reparameterisable posterior")

    def __call__(self, model, x, beta=1.0, training=False) -> Terms:
        q = model.encode(x, training=training)
        z = q.sample(model.num_samples)                                  # [S, B, L]
        log_px = model.likelihood(z, training=training).log_prob(x)     # [S, B]
        distortion = -tf.reduce_mean(log_px, axis=0)
        rate = model.rate(q, z)
        return Terms(loss=tf.reduce_mean(distortion + beta * rate),
                     elbo=-(distortion + rate), distortion=distortion, rate=rate)


def build(name: str) -> Estimator:
    return ESTIMATORS.build(name)
