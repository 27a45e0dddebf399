"""The VAE: a `keras.Model` joining prior p(z), encoder q(z|x) and decoder p(x|z).

Shapes: images ``x`` are ``[B, H, W, C]``; latents carry a leading sample axis ``z: [S, B, L]``;
``q(z|x)`` has batch shape ``[B]``, ``p(x|z)`` batch shape ``[S, B]``, both with the natural event
shapes (``[L]`` and ``[H, W, C]``), so every ``log_prob`` broadcasts to ``[S, B]``.
"""
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import estimators as estimators_lib
from tfvae import likelihoods, networks, posteriors, priors
from tfvae import precision as precision_lib
from tfvae.errors import ConfigError

tfd = tfp.distributions

KL_MODES = ("auto", "analytic", "mc")
_ROUND_NUMBERS = sorted({int(m * 10 ** e) for e in range(8) for m in (1, 2, 2.5, 4, 5)
                         if m * 10 ** e == int(m * 10 ** e)})


def iw_chunk_outputs() -> int:
    """Decoder outputs per importance-sampling chunk. On CPU 2^20 (4 MB of float32): chunks
    that stay in the cores' caches ran 10-12% faster than 4 x 2^20 on the 2-core machine
    (benchmarks/iw_eval_speed.py). With a GPU, 4 x 2^20, for bigger kernels."""
    return 4 * 2 ** 20 if tf.config.list_logical_devices("GPU") else 2 ** 20


class VAE(keras.Model):
    """Variational auto-encoder trained with `fit` through the chosen estimator.

    Tracked metrics (per epoch; ``val_`` prefixed on validation data): ``loss`` (the objective
    the optimiser minimises, with the warm-up's beta), ``elbo``, ``distortion`` (D), ``rate`` (R)
    and ``beta``. Evaluation (`test_step`) uses beta = 1, so ``val_loss = -val_elbo``.

    Args:
      encoder: images -> posterior parameters ``[B, posterior.params_size]``.
      decoder: latents ``[N, L]`` -> likelihood logits ``[N, H, W, C]``.
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
        self.encoder, self.decoder = encoder, decoder
        self.posterior_head, self.likelihood_head = posterior, likelihood
        self.prior = prior
        self.estimator = estimator
        self.image_shape = tuple(int(d) for d in image_shape)
        # Decoder outputs: the likelihood's parameters, P per pixel and channel.
        self.param_shape = self.image_shape[:-1] + (
            self.image_shape[-1] * int(getattr(likelihood, "params_per_pixel", 1)),)
        self.latent_dim = int(posterior.latent_dim)
        self.num_samples = int(num_samples)
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.posterior_name = posterior_name
        self.analytic_kl = self._choose_kl(kl)
        estimator.check(self)
        estimator.prepare(self)
        names = ("loss", "elbo", "distortion", "rate", "beta") + tuple(estimator.metric_names)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.group_optimizers = {}

    # ------------------------------------------------------------------ parts of the model
    def encode(self, x, training=None) -> tfd.Distribution:
        """q(z|x), batch shape ``[B]``, event shape ``[L]``."""
        return self.posterior_head(self.encoder(x, training=training))

    def decode(self, z, training=None):
        """Likelihood parameters ``[..., H, W, C * P]`` (logits for P = 1) for latents
        ``[..., L]`` (any leading axes)."""
        lead = tf.shape(z)[:-1]
        logits = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        return tf.reshape(logits, tf.concat([lead, self.param_shape], 0))

    def likelihood(self, z, training=None) -> tfd.Distribution:
        """p(x|z), batch shape ``z.shape[:-1]``, event shape ``[H, W, C]``."""
        return self.likelihood_head(self.decode(z, training=training))

    def rate(self, q, z):
        """KL(q(z|x) || p(z)) per example ``[B]``: analytic, or averaged over samples ``z``."""
        if self.analytic_kl:
            return tfd.kl_divergence(q, self.prior.distribution())
        return tf.reduce_mean(q.log_prob(z) - self.prior.log_prob(z), axis=0)

    def log_prob(self, z, x):
        """Joint log p(x, z) = log p(z) + log p(x|z), shape ``z.shape[:-1]``."""
        return self.prior.log_prob(z) + self.likelihood(z).log_prob(x)

    def call(self, x, training=None):
        """Reconstruction mean E[x | z = code of q(z|x)] (its mean; a flow's image of its base
        mean), ``[B, H, W, C]``."""
        z = posteriors.code(self.encode(x, training=training))
        return self.likelihood(z, training=training).mean()

    def _dummy_posterior(self):
        return self.posterior_head(tf.zeros([1, self.posterior_head.params_size]))

    def posterior_head_reparameterization_type(self):
        return self._dummy_posterior().reparameterization_type

    def _choose_kl(self, mode):
        if mode == "mc":
            return False
        try:
            tfd.kl_divergence(self._dummy_posterior(), self.prior.distribution())
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

    def current_beta(self):
        """beta, ramped linearly over ``kl_warmup_steps`` training steps."""
        if self.kl_warmup_steps <= 0:
            return tf.constant(self.beta)
        step = tf.cast(self.step + 1, tf.float32)
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def _update(self, terms, beta):
        values = {"loss": terms.loss, "elbo": terms.elbo, "distortion": terms.distortion,
                  "rate": terms.rate, "beta": beta, **terms.extras}
        for name, value in values.items():
            self._trackers[name].update_state(value)
        # Only what this step measured: an estimator's extras (e.g. ``iwae``) are training
        # quantities, so evaluation does not report them (it would report their reset value, 0).
        return {name: self._trackers[name].result() for name in values}

    def optimizer_for(self, group):
        """The optimiser that updates ``group``: its own, or the default."""
        return self.group_optimizers.get(group, self.optimizer)

    def backward_passes(self, terms):
        """``[(loss, scaler, groups)]``: the backward passes `gradients` takes. Groups that share
        the surrogate loss share one pass (``terms.loss``); a group with its own loss
        (``terms.group_losses``) gets its own. Under loss scaling (`tfvae.precision`) each
        optimiser's groups take its scale: ``loss`` is then ``scaler``'s scaled loss. Call it
        inside the tape."""
        passes = {}
        for g, variables in self.parameter_groups().items():
            if not variables:
                continue
            optimizer = self.optimizer_for(g)
            scaler = optimizer if precision_lib.loss_scale(optimizer) is not None else None
            key = (g if g in terms.group_losses else "", id(scaler))
            passes.setdefault(key, (scaler, []))[1].append(g)
        out = []
        for (loss_name, _), (scaler, groups) in passes.items():
            loss = terms.group_losses[loss_name] if loss_name else terms.loss
            out.append((scaler.get_scaled_loss(loss) if scaler else loss, scaler, groups))
        return out

    def gradients(self, passes, tape):
        """``{group: [(grad, var), ...]}`` from `backward_passes`, unscaled."""
        variables_of = self.parameter_groups()
        out = {}
        for loss, scaler, groups in passes:
            variables = [v for g in groups for v in variables_of[g]]
            grads = tape.gradient(loss, variables)
            if scaler is not None:
                grads = scaler.get_unscaled_gradients(grads)
            i = 0
            for g in groups:
                out[g] = list(zip(grads[i:i + len(variables_of[g])], variables_of[g]))
                i += len(variables_of[g])
        return out

    # Plain Python tracing, no AutoGraph: nothing in a step branches or loops on a tensor, and
    # converting the ~60 functions a step calls took 1.7 s of a 3.3 s first-step trace (CPU).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        beta = self.current_beta()
        with tf.GradientTape(persistent=True) as tape:
            terms = self.estimator.terms(self, x, beta=beta, training=True)
            if self.losses:  # layer regularisers join every group's loss
                reg = tf.add_n(self.losses)
                terms = terms._replace(loss=terms.loss + reg, group_losses={
                    g: loss + reg for g, loss in terms.group_losses.items()})
            # Each replica's loss is a mean over its share of the global batch, and optimisers
            # sum gradients over replicas: dividing by the replica count makes the applied
            # gradient the global batch's mean gradient (1 replica: unchanged).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            passes = self.backward_passes(terms._replace(
                loss=terms.loss / replicas,
                group_losses={g: loss / replicas for g, loss in terms.group_losses.items()}))
        per_group = self.gradients(passes, tape)
        del tape
        default = [gv for g, gvs in per_group.items() if g not in self.group_optimizers
                   for gv in gvs]
        if default:
            self.optimizer.apply_gradients(default)
        for g, optimizer in self.group_optimizers.items():
            if per_group.get(g):
                optimizer.apply_gradients(per_group[g])
        self.step.assign_add(1)
        return self._update(terms, beta)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        terms = self.elbo_terms(x)
        return self._update(terms, tf.constant(1.0))

    def elbo_terms(self, x, seed=None) -> estimators_lib.Terms:
        """The ELBO decomposition at beta = 1 (evaluation mode), per example; whatever the
        training estimator, so that every model is measured the same way. ``seed``: a stateless
        seed (shape [2]) makes the draw reproducible."""
        return estimators_lib.elbo_decomposition(self, x, seed=seed)

    # ------------------------------------------------------------------ measuring and using
    def log_likelihood(self, x, num_samples=1000, chunk_size=None):
        """Importance-sampled estimate of log p(x) per example ``[B]`` (the IWAE bound):

            log p(x) >= log 1/k sum_{s=1..k} p(x, z_s) / q(z_s|x),   z_s ~ q(z|x),

        tight as k -> infinity. Samples are drawn ``chunk_size`` at a time and combined with a
        running log-sum-exp, so k = 5,000 fits in memory (peak ~ chunk_size * B decoder
        outputs, see `iw_chunk_size`). One traced graph serves every k (k is a tensor; no
        retracing when it changes). The loop runs as a TensorFlow graph, not under XLA: on
        CPU, TensorFlow's oneDNN kernels fuse each layer's matmul, bias and activation, and
        were measured 7-19% faster here than XLA:CPU (benchmarks/iw_eval_speed.py; training
        steps are the other way round and stay XLA-compiled).
        """
        x, num_samples, chunk = self._iw_arguments(x, num_samples, chunk_size)
        return self._iw_bound(x, num_samples, chunk)

    def log_weights(self, x, num_samples: int, chunk_size=None, seed=None) -> np.ndarray:
        """All k importance log-weights log w_s = log p(x, z_s) - log q(z_s|x), z_s ~ q(z|x),
        as a NumPy array ``[k, B]`` (for diagnostics: ESS, Pareto k-hat); drawn in chunks in
        one traced loop. ``seed``: a pair of ints making the draws reproducible (stateless
        sampling; chunk i draws with ``stateless_fold_in(seed, i)``)."""
        x, num_samples, chunk = self._iw_arguments(x, num_samples, chunk_size)
        if seed is None:
            seed = tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int32)
        return self._log_weights(x, num_samples, chunk, tf.cast(seed, tf.int32)).numpy()

    def _iw_arguments(self, x, num_samples, chunk_size):
        """Checked inputs of the sampling loops: images, k as a tensor (changing k does not
        retrace) and the chunk size as a Python int (default `iw_chunk_size`), at most k."""
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ConfigError(f"num_samples={num_samples} must be >= 1")
        x = tf.convert_to_tensor(x, tf.float32)
        chunk = int(chunk_size or self.iw_chunk_size(int(x.shape[0] or 1)))
        return x, tf.constant(num_samples, tf.int32), max(1, min(chunk, num_samples))

    @tf.function(reduce_retracing=True)
    def _log_weights(self, x, num_samples, chunk_size: int, seed):
        q = self.encode(x, training=False)
        log_prior = self.prior.log_prob_fn()
        num_chunks = (num_samples + chunk_size - 1) // chunk_size
        parts = tf.TensorArray(tf.float32, size=num_chunks)
        for i in tf.range(num_chunks):
            z = q.sample(chunk_size, seed=tf.random.experimental.stateless_fold_in(seed, i))
            parts = parts.write(i, self._log_weight(x, q, log_prior, z))
        return parts.concat()[:num_samples]

    def _log_weight(self, x, q, log_prior, z):
        """log p(x|z) + log p(z) - log q(z|x), ``[C, B]`` for z ``[C, B, L]``."""
        return self.likelihood(z, training=False).log_prob(x) + log_prior(z) - q.log_prob(z)

    def iw_chunk_size(self, batch_size: int) -> int:
        """Samples per chunk: at most `iw_chunk_outputs` decoder outputs, rounded down to a round
        number (1, 2, 2.5, 4 or 5 x 10^n), so the usual k (100, 500, 1,000, 5,000) are whole
        numbers of chunks and the last chunk's masked tail wastes nothing; e.g. 10 for 100
        MNIST images and 50 for 20 on CPU. It does not depend on k: changing k does not
        retrace."""
        per_sample = max(1, batch_size * math.prod(self.param_shape))
        cap = max(1, iw_chunk_outputs() // per_sample)
        return max(n for n in _ROUND_NUMBERS if n <= cap)

    @tf.function(reduce_retracing=True)
    def _iw_bound(self, x, num_samples, chunk_size: int):
        """``chunk_size`` is a Python int (a static shape); samples past
        ``num_samples`` in the last chunk are masked out."""
        q = self.encode(x, training=False)
        log_prior = self.prior.log_prob_fn()  # the prior's parameters once for every chunk
        acc = tf.fill(tf.shape(x)[:1], tf.constant(-np.inf, tf.float32))
        num_chunks = (num_samples + chunk_size - 1) // chunk_size
        for i in tf.range(num_chunks):
            log_w = self._log_weight(x, q, log_prior, q.sample(chunk_size))   # [C, B]
            valid = i * chunk_size + tf.range(chunk_size) < num_samples
            log_w = tf.where(valid[:, None], log_w, tf.constant(-np.inf, tf.float32))
            acc = tf.reduce_logsumexp(tf.stack([acc, tf.reduce_logsumexp(log_w, 0)]), 0)
        return acc - tf.math.log(tf.cast(num_samples, tf.float32))

    def sample(self, n, mean=True, seed=None, temperature=1.0):
        """``n`` images from the model: z ~ p(z) (at ``temperature``, see `Prior.sample`), then
        the mean (or a sample) of p(x|z)."""
        z = self.prior.sample(n, seed=seed, temperature=temperature)
        px = self.likelihood(z, training=False)
        return px.mean() if mean else px.sample(seed=seed)

    def reconstruct(self, x):
        """Mean of p(x | z = mean of q(z|x)), ``[B, H, W, C]``."""
        return self(x, training=False)


def build(config, image_shape, steps_per_epoch=0, train_images=None) -> VAE:
    """Builds a `VAE` from a full tfvae config (``config.model``, ``config.train``).

    ``steps_per_epoch`` converts ``train.kl_warmup_epochs`` to optimiser steps; ``train_images``
    (a few, ``[K, H, W, C]``) are offered to priors that initialise from data.
    """
    m = config.model
    posterior = posteriors.build(m)
    likelihood = likelihoods.build(m.likelihood, m.likelihood_components)
    if likelihood.binary_data and config.data.pixels == "continuous":
        raise ConfigError(
            f"model.likelihood={m.likelihood!r} is a distribution over {{0, 1}} but "
            "data.pixels='continuous' gives [0, 1] intensities; use data.pixels='binary' or "
            "'dynamic', or model.likelihood='continuous_bernoulli'")
    if likelihood.levels_data and config.data.pixels != "continuous":
        raise ConfigError(
            f"model.likelihood={m.likelihood!r} models the 256 grey levels of 8-bit pixels but "
            f"data.pixels={config.data.pixels!r} binarises them; use data.pixels='continuous'")
    encoder, decoder = networks.build(m, image_shape, posterior.params_size,
                                      likelihood.params_per_pixel, config.train.precision)
    context = priors.PriorContext(
        image_shape=tuple(image_shape),
        posterior_fn=lambda x: posterior(encoder(x, training=False)),
        train_images=train_images)
    prior = priors.build(m, context)
    model = VAE(encoder, decoder, posterior, likelihood, prior,
                estimators_lib.build(config), image_shape,
                num_samples=m.num_samples, beta=config.train.beta,
                kl_warmup_steps=int(config.train.kl_warmup_epochs * steps_per_epoch), kl=m.kl,
                posterior_name=m.posterior, name="vae")
    model(tf.zeros((1,) + tuple(image_shape)))  # creates every variable
    return model
