"""Priors p(z) behind one small interface.

A prior is a Keras layer (so the model tracks, trains and checkpoints its variables) whose
``distribution()`` returns a `tfd.Distribution` with batch shape ``[]`` and event shape ``[L]``.
``log_prob(z)`` and ``sample(n)`` are shortcuts to it; ``log_prob`` broadcasts over any leading
axes of ``z``, e.g. ``[S, B, L] -> [S, B]``.
"""
import dataclasses
from typing import Callable, Optional, Tuple

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.registry import Registry

tfd = tfp.distributions

PRIORS = Registry("prior")


@dataclasses.dataclass
class PriorContext:
    """What a prior may need from the model it belongs to (e.g. a VampPrior needs the encoder).

    ``posterior_fn`` maps images ``[K, H, W, C]`` to q(z|x) with batch shape ``[K]``.
    """

    image_shape: Tuple[int, int, int]
    posterior_fn: Optional[Callable] = None
    train_images: Optional[object] = None  # a few training images, e.g. to initialise pseudo-inputs


class Prior(keras.layers.Layer):
    """Base class: subclasses implement ``distribution()``."""

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    @classmethod
    def create(cls, model_config, context: PriorContext) -> "Prior":
        """Builds the prior from ``config.model`` (override to read prior-specific options)."""
        del context
        return cls(model_config.latent_dim, name="prior")

    def distribution(self) -> tfd.Distribution:
        raise NotImplementedError

    def call(self, inputs=None):
        return self.distribution()

    def log_prob(self, z):
        return self.distribution().log_prob(z)

    def sample(self, n, seed=None):
        return self.distribution().sample(n, seed=seed)


@PRIORS.register("standard_normal")
class StandardNormal(Prior):
    """p(z) = N(0, I): fixed, with an analytic KL to a Gaussian posterior."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], self.dtype)
        return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), reinterpreted_batch_ndims=1)


def build(model_config, context: PriorContext) -> Prior:
    return PRIORS.get(model_config.prior).create(model_config, context)
