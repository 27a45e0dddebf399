"""The VAE: a `keras.Model` joining prior p(z), encoder q(z|x) and decoder p(x|z). Only a model:
how it is trained is its estimator's (`tfvae.estimators`) and `tfvae.gradients`'; how it is
measured, `tfvae.importance` and `tfvae.evaluation`, through the public methods below.

Shapes: images ``x`` are ``[B, H, W, C]``; latents carry a leading sample axis ``z: [S, B, L]``;
``q(z|x)`` has batch shape ``[B]``, ``p(x|z)`` batch shape ``[S, B]``, both with the natural event
shapes (``[L]`` and ``[H, W, C]``), so every ``log_prob`` broadcasts to ``[S, B]``.

The interface every estimator, importance sampler, diagnostic and export uses, and that a model
with several latent layers or labels gives too (with z then the structure of its latents):

| method | what |
| --- | --- |
| ``encode(x)`` | the proposal q(z|x) (samples, ``log_prob``) |
| ``log_joint_fn()`` | ``(x, z) -> log p(x, z)``, the prior's parameters computed once |
| ``likelihood(z)``, ``prior`` | p(x|z), p(z) |
| ``rate(q, z)``, ``rates(q, z)`` | KL(q(z|x) || p(z)) per example; per latent layer |
| ``log_prior(z)`` | log p(z) |
| ``posterior_example()`` | q for one dummy input: its type says what an estimator may do |
| ``join(z)``, ``split(z)``, ``sample_latents(n)`` | the latents as one flat ``[..., sum d_l]`` |

`HierarchicalVAE` is the same interface over several latent layers (`tfvae.hierarchy`): z is
then the tuple ``(z_1, ..., z_L)``, bottom first. The models with labels are in
`tfvae.labelled`; `tfvae.builder.build` makes any of them from a config.
"""
import contextlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import estimators as estimators_lib
from tfvae import gradients as gradients_lib
from tfvae import hierarchy, importance, posteriors
from tfvae.errors import ConfigError

tfd = tfp.distributions

KL_MODES = ("auto", "analytic", "mc")


class VAE(keras.Model):
    """Variational auto-encoder trained with `fit` through the chosen estimator.

    Tracked metrics (per epoch; ``val_`` prefixed on validation data): ``loss`` (the objective
    the optimiser minimises, with the warm-up's beta), ``elbo``, ``distortion`` (D), ``rate`` (R)
    and ``beta``. Evaluation (`test_step`) uses beta = 1, so ``val_loss = -val_elbo``.

    Args:
      encoder: images -> posterior parameters ``[B, posterior.params_size]``.
      decoder: latents ``[N, L]`` -> likelihood parameters ``[N, H, W, C * P]``.
      posterior: a `posteriors` head; likelihood: a `likelihoods` head; prior: a `priors.Prior`.
      estimator: an `estimators.Estimator`.
      num_samples: latent samples S per example in the training objective.
      beta: weight of the rate term; ``kl_warmup_steps`` ramps it linearly from 0 to ``beta``.
      kl: 'analytic' (needs a KL registered in TFP), 'mc', or 'auto' (analytic where registered).
    """

    def __init__(self, encoder, decoder, posterior, likelihood, prior, estimator, image_shape,
                 num_samples=1, beta=1.0, kl_warmup_steps=0, kl="auto", posterior_name="",
                 **kwargs):
        super().__init__(**kwargs)
        if kl not in KL_MODES:
            raise ConfigError(f"model.kl={kl!r}; valid modes are: {', '.join(KL_MODES)}")
        if num_samples < 1:
            raise ConfigError(f"model.num_samples={num_samples} must be >= 1")
        if beta < 0:
            raise ConfigError(f"train.beta={beta} must be >= 0")
        # Attribute names are the checkpoints' object paths: renaming one orphans old weights.
        self.encoder, self.decoder = encoder, decoder
        self.posterior_head, self.likelihood_head = posterior, likelihood
        self.prior = prior
        self.estimator = estimator
        self.image_shape = tuple(int(d) for d in image_shape)
        # Decoder outputs: the likelihood's parameters, P per pixel and channel.
        self.param_shape = self.image_shape[:-1] + (
            self.image_shape[-1] * int(getattr(likelihood, "params_per_pixel", 1)),)
        self.latent_dim = int(posterior.latent_dim)  # of the flat view (`join`)
        self.latent_dims = (self.latent_dim,)
        self.num_samples = int(num_samples)
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.posterior_name = posterior_name
        self.analytic_kl = self._choose_kl(kl)
        estimator.check(self)
        estimator.prepare(self)
        names = ("loss", "elbo", "distortion", "rate", "beta") + tuple(estimator.metric_names)
        names += self.rate_names() + tuple(self.extra_metric_names)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.group_optimizers = {}

    # ------------------------------------------------------------------ its kind
    # What `tfvae.builder` and the training loop ask of a kind of model (`builder.MODELS`).
    conditional = False  # models images given their labels (`labelled.ConditionalVAE`)
    semi_supervised = False  # also infers them: q(y|x), p(y) (`labelled.SemiSupervisedVAE`)
    labelled_stream = False  # trains on (a batch of all images, a batch of labelled ones)
    steps_read_labels = False  # its train and test steps take (images, labels) batches
    extra_metric_names = ()

    @classmethod
    def check_config(cls, config, num_classes: int = 0) -> None:
        """Refuses, with a one-line `ConfigError`, a config this kind of model cannot take
        (``num_classes``: of the data's labels, 0 without)."""

    @classmethod
    def config_kwargs(cls, config, *, image_shape, num_classes=0, num_labelled=0,
                      num_train=0) -> dict:
        """This kind's own constructor arguments, from the config and the data."""
        return {}

    # ------------------------------------------------------------------ the model

    def conditioned(self, labels, copies: int = 1):
        """A context in which the model is that of images given ``labels`` (a
        `ConditionalVAE`); nothing for a model without labels."""
        del labels, copies
        return contextlib.nullcontext()

    def label_inputs(self):
        """The one-hot labels ``[B, K]`` the networks read inside `conditioned`; None for a
        model without labels."""
        return None

    def encode(self, x, training=None) -> tfd.Distribution:
        """q(z|x), batch shape ``[B]``, event shape ``[L]``."""
        return self.posterior_head.distribution(self.encoder(x, training=training))

    def decode(self, z, training=None):
        """Likelihood parameters ``[..., H, W, C * P]`` (logits for P = 1) for latents
        ``[..., L]`` (any leading axes)."""
        lead = tf.shape(z)[:-1]
        logits = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        return tf.reshape(logits, tf.concat([lead, self.param_shape], 0))

    def likelihood(self, z, training=None) -> tfd.Distribution:
        """p(x|z), batch shape ``z.shape[:-1]``, event shape ``[H, W, C]``. Nothing is computed
        beyond the decoder pass until the caller asks (a mean, a log-prob)."""
        return self.likelihood_head.distribution(self.decode(z, training=training))

    def rate(self, q, z):
        """KL(q(z|x) || p(z)) per example ``[B]``: analytic, or averaged over samples ``z``."""
        return self.top_rate(q, z)

    def rates(self, q, z):
        """The rate of each latent layer, bottom first (one here), each ``[B]``."""
        return [self.rate(q, z)]

    def rate_names(self):
        """Metric names of the per-layer rates (none for one layer)."""
        return ()

    def top_rate(self, q_top, z_top):
        """KL(q(z_L|x) || p(z_L)) of the top (here the only) layer, ``[B]``."""
        if self.analytic_kl:
            return tfd.kl_divergence(q_top, self.prior.distribution())
        return tf.reduce_mean(q_top.log_prob(z_top) - self.log_prior_fn()(z_top), axis=0)

    def encode_top(self, x, training=None) -> tfd.Distribution:
        """q(z_L | x) of the top (here the only) layer: the layer the prior p(z_L) scores."""
        return self.posterior_head.distribution(self.encoder(x, training=training))

    def log_prior(self, z):
        """log p(z), shape ``z.shape[:-1]``."""
        return self.log_prior_fn()(z)

    def log_prior_fn(self):
        """``z -> log p(z)`` with the prior's parameters computed once."""
        return self.prior.log_prob_fn()

    def join(self, z):
        """The latents as one tensor ``[..., latent_dim]`` (one layer: z itself)."""
        return z

    def split(self, flat):
        """Inverse of `join`."""
        return flat

    def sample_latents(self, n, seed=None, temperature=1.0):
        """``n`` draws of z ~ p(z) as one flat tensor ``[n, latent_dim]``."""
        return self.prior.sample(n, seed=seed, temperature=temperature)

    def log_prob(self, z, x):
        """Joint log p(x, z) = log p(z) + log p(x|z), shape ``z.shape[:-1]``."""
        return self.log_joint_fn()(x, z)

    def log_joint_fn(self, training=False):
        """``(x, z) -> log p(x, z)`` with the prior's parameters computed once (one encoder
        pass over a VampPrior's pseudo-inputs for many calls)."""
        log_prior = self.log_prior_fn()
        return lambda x, z: (self.likelihood(z, training=training).log_prob(x) + log_prior(z))

    def posterior_example(self) -> tfd.Distribution:
        """q for one all-zero parameter vector: its type and reparameterisation say what an
        estimator may do with this posterior."""
        return self.posterior_head.distribution(tf.zeros([1, self.posterior_head.params_size]))

    def call(self, x, training=None):
        """Reconstruction mean E[x | z = code of q(z|x)] (its mean; a flow's image of its base
        mean), ``[B, H, W, C]``."""
        z = posteriors.code(self.encode(x, training=training))
        return self.likelihood(z, training=training).mean()

    def _choose_kl(self, mode):
        if mode == "mc":
            return False
        try:
            top = self.posterior_head.distribution(tf.zeros([1, self.posterior_head.params_size]))
            tfd.kl_divergence(top, self.prior.distribution())
            return True
        except NotImplementedError:
            if mode == "analytic":
                raise ConfigError(
                    f"model.kl='analytic' but TFP registers no KL between the posterior and the "
                    f"prior {type(self.prior).__name__}; use model.kl='auto' or 'mc'") from None
            return False

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", group_optimizers=None, **kwargs):
        """Keras ``compile``, plus ``group_optimizers``: ``{group: optimizer}`` for any of the
        groups of `parameter_groups` that should not use ``optimizer`` (e.g. RMSprop with a small
        rate for the inference network under score-function training)."""
        super().compile(optimizer=optimizer, **kwargs)
        unknown = set(group_optimizers or {}) - set(estimators_lib.GROUPS)
        if unknown:
            raise ConfigError(f"unknown parameter groups {sorted(unknown)}; valid groups are: "
                              f"{', '.join(estimators_lib.GROUPS)}")
        self.group_optimizers = dict(group_optimizers or {})

    def parameter_groups(self):
        """Trainable variables by group: ``generative`` (decoder, prior), ``inference``
        (encoder and posterior head), ``baseline`` (the estimator's control variates)."""
        return {
            "generative": self.decoder.trainable_variables + self.likelihood_head.trainable_variables
            + self.prior.trainable_variables,
            "inference": self.encoder.trainable_variables
            + self.posterior_head.trainable_variables,
            "baseline": self.estimator.trainable_variables,
        }

    def optimizers(self):
        """``{group: optimizer}``: each group's own, or the default."""
        return {g: self.group_optimizers.get(g, self.optimizer) for g in estimators_lib.GROUPS}

    def current_beta(self):
        """beta, ramped linearly over ``kl_warmup_steps`` training steps."""
        if self.kl_warmup_steps <= 0:
            return tf.constant(self.beta)
        step = tf.cast(self.step + 1, tf.float32)
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def _update(self, terms, beta):
        values = {"loss": terms.loss, "elbo": terms.elbo, "distortion": terms.distortion,
                  "rate": terms.rate, "beta": beta, **terms.extras}
        values.update(zip(self.rate_names(), terms.rates[:len(self.rate_names())]))
        for name, value in values.items():
            self._trackers[name].update_state(value)
        # Only what this step measured: an estimator's extras (e.g. ``iwae``) are training
        # quantities, so evaluation does not report them (it would report their reset value, 0).
        return {name: self._trackers[name].result() for name in values}

    # Plain Python tracing, no AutoGraph: nothing in a step branches or loops on a tensor, and
    # converting the ~60 functions a step calls took 1.7 s of a 3.3 s first-step trace (CPU).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        beta = self.current_beta()
        groups, optimizers = self.parameter_groups(), self.optimizers()
        with tf.GradientTape(persistent=True) as tape:
            terms = self.training_terms(data, beta)
            if self.losses:  # layer regularisers join every group's loss
                reg = tf.add_n(self.losses)
                terms = terms._replace(loss=terms.loss + reg, group_losses={
                    g: loss + reg for g, loss in terms.group_losses.items()})
            passes = gradients_lib.backward_passes(gradients_lib.scale_for_replicas(terms),
                                                   groups, optimizers)
        per_group = gradients_lib.gradients(passes, tape, groups)
        del tape
        gradients_lib.apply(per_group, optimizers, default=self.optimizer)
        self.step.assign_add(1)
        return self._update(terms, beta)

    def training_terms(self, data, beta) -> estimators_lib.Terms:
        """The `Terms` a training batch gives: the estimator's, for the images."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.estimator.terms(self, x, beta=beta, training=True)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        terms = self.elbo_terms(x)
        return self._update(terms, tf.constant(1.0))

    # ------------------------------------------------------------------ measuring and using
    def elbo_terms(self, x, seed=None) -> estimators_lib.Terms:
        """The ELBO decomposition at beta = 1 (evaluation mode), per example; whatever the
        training estimator, so that every model is measured the same way. ``seed``: a stateless
        seed (shape [2]) makes the draw reproducible."""
        return estimators_lib.elbo_decomposition(self, x, seed=seed)

    def log_likelihood(self, x, num_samples=1000, chunk_size=None, seed=None, labels=None):
        """Importance-sampled bound on log p(x) (log p(x|y) given ``labels``) per example
        ``[B]`` (`tfvae.importance.log_likelihood`); ``seed``: a pair of ints, reproducible
        draws."""
        return importance.log_likelihood(self, x, num_samples, chunk_size or 0, seed, labels)

    def log_weights(self, x, num_samples: int, chunk_size=None, seed=None,
                    labels=None) -> np.ndarray:
        """All k importance log-weights ``[k, B]`` (`tfvae.importance.log_weights`)."""
        return importance.log_weights(self, x, num_samples, chunk_size or 0, seed, labels)

    def sample(self, n, mean=True, seed=None, temperature=1.0):
        """``n`` images from the model: z ~ p(z) (at ``temperature``, see `Prior.sample`), then
        the mean (or a sample) of p(x|z)."""
        z = self.sample_latents(n, seed=seed, temperature=temperature)
        px = self.likelihood(z, training=False)
        return px.mean() if mean else px.sample(seed=seed)

    def reconstruct(self, x):
        """Mean of p(x | z = mean of q(z|x)), ``[B, H, W, C]``."""
        return self(x, training=False)


class HierarchicalVAE(VAE):
    """A VAE with latent layers z_1 (nearest x) ... z_L (`tfvae.hierarchy`): p(z_L) is the
    prior, q(z_L|x) the encoder and posterior head, and the `hierarchy.Ladder` (in the decoder's
    place) holds everything below: q(z_l|x, z_{l+1}), p(z_l|z_{l+1}) and p(x|z_1..z_L). The
    interface is the VAE's with z the tuple of layers; ``rates`` gives each layer's rate.
    """

    def __init__(self, encoder, ladder, posterior, likelihood, prior, estimator, image_shape,
                 kl="auto", **kwargs):
        super().__init__(encoder, ladder, posterior, likelihood, prior, estimator, image_shape,
                         kl=kl, **kwargs)
        self.latent_dims = ladder.latent_dims
        self.latent_dim = sum(self.latent_dims)
        self.kl_mode = kl

    @property
    def ladder(self) -> hierarchy.Ladder:
        return self.decoder

    def encode(self, x, training=None) -> hierarchy.HierarchicalPosterior:
        """q(z_1, ..., z_L | x) (given the labels, for a model with labels), sampled top-down."""
        return self.ladder.proposal(x, self.encode_top(x, training), training,
                                    labels=self.label_inputs())

    def decode(self, z, training=None):
        """Likelihood parameters for the structure ``z`` (or its flat view)."""
        return self.ladder.decode(self.split(z) if tf.is_tensor(z) else z, training=training,
                                  labels=self.label_inputs())

    def log_prior(self, z):
        """log p(z_L) + sum_{l<L} log p(z_l | z_{l+1})."""
        return self.prior.log_prob(z[-1]) + self.ladder.log_conditionals(z)

    def log_joint_fn(self, training=False):
        log_top = self.prior.log_prob_fn()
        return lambda x, z: (self.likelihood(z, training=training).log_prob(x) + log_top(z[-1])
                             + self.ladder.log_conditionals(z, training))

    def rates(self, q, z):
        """R_l per example, bottom first: each layer's KL to its conditional prior at the
        sampled parents, analytic (Gaussians) unless ``model.kl='mc'``; the top layer's as
        `top_rate`. Averaged over the S samples of ``z``."""
        out = []
        for l, (q_l, p_l) in enumerate(zip(q.conditionals(z), self.ladder.conditionals(z))):
            if self.kl_mode == "mc":
                kl = q_l.log_prob(z[l]) - p_l.log_prob(z[l])
            else:
                kl = tfd.kl_divergence(q_l, p_l)
            out.append(tf.reduce_mean(kl, axis=0))
        return out + [self.top_rate(q.top, z[-1])]

    def rate(self, q, z):
        return tf.add_n(self.rates(q, z))

    def rate_names(self):
        return tuple(f"rate_z{l + 1}" for l in range(len(self.ladder.latent_dims)))

    def posterior_example(self):
        return self.encode(tf.zeros((1,) + self.image_shape), training=False)

    def join(self, z):
        return tf.concat(z, axis=-1)

    def split(self, flat):
        return self.ladder.split(flat)

    def sample_latents(self, n, seed=None, temperature=1.0):
        """z_L ~ p(z_L), then z_l ~ p(z_l | z_{l+1}) down to z_1, each at ``temperature``;
        flat ``[n, sum d_l]``."""
        top = self.prior.sample(n, seed=seed, temperature=temperature)
        return self.join(self.ladder.sample_down(top, seed=seed, temperature=temperature))

    def parameter_groups(self):
        return {
            "generative": self.ladder.generative_variables()
            + self.likelihood_head.trainable_variables + self.prior.trainable_variables,
            "inference": self.encoder.trainable_variables + self.ladder.inference_variables()
            + self.posterior_head.trainable_variables,
            "baseline": self.estimator.trainable_variables,
        }
