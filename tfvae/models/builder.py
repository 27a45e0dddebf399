"""A model from a config: its parts by name (`networks`, `posteriors`, `likelihoods`,
`priors`, `estimators`) and its latent nodes (`tfvae.models.nodes`): the structure of z from
``model.latent_dims`` (one `nodes.Layer`, or a `nodes.Chain` of several layers) and the label
y's role from ``model.label`` (`tfvae.models.labels.LABELS`: none, observed, latent, component). Every
model is a `model.VAE` of those nodes; a role refuses in one line what it cannot take.
"""
import math
import os
import re

import tensorflow as tf

from tfvae.distributions import codes, likelihoods, posteriors, priors
from tfvae.errors import ConfigError
from tfvae.inference import estimators as estimators_lib
from tfvae.models import belief, hierarchy, labels, networks, nodes
from tfvae.models.model import VAE


def build(config, image_shape, steps_per_epoch=0, train_images=None,
          num_classes: int = 0, num_labelled: int = 0, num_train: int = 0) -> VAE:
    """The model of a full tfvae config (``config.model``, ``config.train``), with every
    variable created.

    Args:
      image_shape: ``(H, W, C)`` of the data.
      steps_per_epoch: converts ``train.kl_warmup_epochs`` to optimiser steps.
      train_images: a few training images ``[K, H, W, C]``, offered to priors that initialise
        from data.
      num_classes: K of the labels, for the models with labels; ``num_labelled`` of
        ``num_train`` training images keep their label (the semi-supervised objective's
        weights).

    A model too large for this machine's memory raises `ConfigError` (with the tensor that did
    not fit), not TensorFlow's ``ResourceExhaustedError``.
    """
    try:
        return _build(config, image_shape, steps_per_epoch, train_images, num_classes,
                      num_labelled, num_train)
    except (tf.errors.ResourceExhaustedError, MemoryError) as err:
        raise out_of_memory(err) from None


def memory_bytes() -> int:
    """This machine's physical memory (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_step_memory(config, param_shape) -> None:
    """Refuses, in one line, a step whose likelihood tensors alone (S samples x B images x the
    decoder's outputs, float32, with their gradients and the log-probabilities: ~4 copies)
    exceed the machine's memory: TensorFlow would not raise for it but be killed mid-step."""
    need = 4 * 4 * config.model.num_samples * config.data.batch_size * math.prod(param_shape)
    have = memory_bytes()
    if have and need > have:
        raise ConfigError(
            f"out of memory: model.num_samples={config.model.num_samples} x data.batch_size="
            f"{config.data.batch_size} x {math.prod(param_shape)} outputs need about "
            f"{need / 2 ** 30:.0f} GiB per step, this machine has {have / 2 ** 30:.0f} GiB; lower "
            "data.batch_size or model.num_samples")


def out_of_memory(err) -> ConfigError:
    """The one line for a model, batch or sample count that does not fit in memory."""
    shape = re.search(r"tensor with shape\s*\[[^\]]*\]", str(err))
    return ConfigError(
        f"out of memory ({shape.group(0) if shape else type(err).__name__}): lower "
        "data.batch_size, model.num_samples, model.latent_dims, model.network.hidden / "
        "conv_channels or model.prior.components")


def _build(config, image_shape, steps_per_epoch, train_images, num_classes, num_labelled,
           num_train) -> VAE:
    m = config.model
    networks.validate(m)
    hierarchy.check(config)
    belief.check(config)
    role = labels.check(config, num_classes)
    reads_y = num_classes if role.conditions_networks else 0
    dims = tuple(int(d) for d in m.latent_dims)
    image_shape = tuple(int(d) for d in image_shape)
    discrete = codes.is_discrete(m.posterior.name)  # a belief network: q(b_1 | x) bottom-up
    posterior = posteriors.build(m.posterior, dims[0] if discrete else dims[-1])
    likelihood = likelihoods.build(m.likelihood)
    _check_pixels(config, likelihood)
    check_step_memory(config, image_shape[:-1] + (
        image_shape[-1] * int(likelihood.params_per_pixel),))
    encoder, decoder = networks.build(m, image_shape, posterior.params_size,
                                      likelihood.params_per_pixel, config.train.precision,
                                      extra_inputs=reads_y,
                                      label_input=m.label_input)
    if len(dims) > 1 and not discrete:  # the ladder takes the decoder's place (`tfvae.models.hierarchy`)
        decoder = hierarchy.Ladder(
            m.network, dims, image_shape,
            image_shape[:-1] + (image_shape[-1] * int(likelihood.params_per_pixel),),
            scale=m.posterior.scale, precision=config.train.precision,
            num_classes=reads_y, name="ladder")
    context = priors.PriorContext(
        image_shape=image_shape,
        posterior_fn=lambda x: posterior.distribution(encoder(x, training=False)),
        train_images=train_images, code_classes=m.posterior.classes)
    prior = priors.build(m.prior, dims[-1], context)
    estimator = estimators_lib.build(config.estimator,  # before the role's parts (seeds)
                                     num_train=num_train)
    label = role.from_config(config, image_shape=image_shape, num_classes=num_classes,
                             num_labelled=num_labelled, num_train=num_train)
    latents = (belief.BeliefNet(dims, m.posterior.name, m.posterior.classes,
                                tuple(m.network.hidden), m.network.activation)
               if discrete else nodes.latents_for(dims, m.kl))
    model = VAE(encoder, decoder, posterior, likelihood, prior, estimator, image_shape,
                latents=latents, label=label, num_samples=m.num_samples,
                beta=config.train.beta,
                kl_warmup_steps=int(config.train.kl_warmup_epochs * steps_per_epoch), kl=m.kl,
                posterior_name=m.posterior.name, name="vae")
    x0 = tf.zeros((1,) + image_shape)
    model((x0, tf.zeros([1], tf.int32)) if reads_y else x0)  # creates every variable
    return model


def _check_pixels(config, likelihood) -> None:
    """The likelihood's support against the pixels the data gives."""
    name, pixels = config.model.likelihood.name, config.data.pixels
    if config.data.features and (likelihood.binary_data or likelihood.levels_data):
        raise ConfigError(
            f"data.features={config.data.features!r} gives real-valued features but "
            f"model.likelihood.name={name!r} models pixels; use model.likelihood.name='gaussian'")
    if config.data.features:
        return
    if likelihood.binary_data and pixels == "continuous":
        raise ConfigError(
            f"model.likelihood.name={name!r} is a distribution over {{0, 1}} but "
            "data.pixels='continuous' gives [0, 1] intensities; use data.pixels='binary' or "
            "'dynamic', or model.likelihood.name='continuous_bernoulli'")
    if likelihood.levels_data and pixels != "continuous":
        raise ConfigError(
            f"model.likelihood.name={name!r} models the 256 grey levels of 8-bit pixels but "
            f"data.pixels={pixels!r} binarises them; use data.pixels='continuous'")
