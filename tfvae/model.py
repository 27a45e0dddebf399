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
then the tuple ``(z_1, ..., z_L)``, bottom first.
"""
import contextlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import estimators as estimators_lib
from tfvae import gradients as gradients_lib
from tfvae import hierarchy, importance, label_estimators, likelihoods, networks, posteriors
from tfvae import priors
from tfvae import precision as precision_lib
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

    # ------------------------------------------------------------------ the model
    conditional = False  # a `ConditionalVAE` models images given their labels
    semi_supervised = False  # a `SemiSupervisedVAE` also infers them: q(y|x), p(y)
    labelled_stream = False  # trains on (a batch of all images, a batch of labelled ones)
    extra_metric_names = ()

    def conditioned(self, labels):
        """A context in which the model is that of images given ``labels`` (a
        `ConditionalVAE`); nothing for a model without labels."""
        del labels
        return contextlib.nullcontext()

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
        """q(z_1, ..., z_L | x), sampled top-down."""
        return self.ladder.proposal(x, self.encode_top(x, training), training)

    def decode(self, z, training=None):
        """Likelihood parameters for the structure ``z`` (or its flat view)."""
        return self.ladder.decode(self.split(z) if tf.is_tensor(z) else z, training=training)

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


class LabelContext:
    """For the models with labels: ``with model.conditioned(labels):`` sets, for the block, the
    labels their methods read (``self._labels``, after ``prepare_labels``); None leaves them as
    they are. Tracing-friendly: the labels are tensors held while a function is traced."""

    def __init__(self, *args, num_classes: int, **kwargs):
        self.num_classes = int(num_classes)
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_labels", None)  # not a Keras-tracked attribute

    def prepare_labels(self, labels):
        return labels

    @tf.autograph.experimental.do_not_convert
    @contextlib.contextmanager
    def conditioned(self, labels):
        if labels is None:
            yield
            return
        previous = self._labels
        object.__setattr__(self, "_labels", self.prepare_labels(tf.convert_to_tensor(labels)))
        try:
            yield
        finally:
            object.__setattr__(self, "_labels", previous)


class ConditionalVAE(LabelContext, VAE):
    """A conditional VAE [1, 2]: q(z | x, y), p(x | z, y) and p(z | y) = p(z), for images x with
    labels y in 0..K-1. y enters the networks one-hot: as K constant channels appended to the
    image (so any encoder takes it) and K inputs appended to z (so any decoder does). The
    prior is the configured p(z) for every class.

    Every method of the VAE applies, to p(x, z | y) and q(z | x, y), inside
    ``with model.conditioned(y):``; training, evaluation and `importance` do so with the labels
    of each batch, so the importance-sampled bound is one of log p(x | y).

    References:
      [1] Sohn, Lee and Yan (2015). Learning Structured Output Representation using Deep
          Conditional Generative Models. NeurIPS.
      [2] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep
          Generative Models. NeurIPS.
    """

    conditional = True

    def prepare_labels(self, labels):
        """Integer labels ``[B]`` one-hot, or (relaxed) one-hot ``[B, K]`` as they are."""
        if labels.dtype.is_integer:
            labels = tf.one_hot(labels, self.num_classes)
        return tf.cast(labels, tf.float32)

    def _onehot(self):
        if self._labels is None:
            raise ValueError("a ConditionalVAE needs labels: use it inside "
                             "`with model.conditioned(labels):`")
        return self._labels

    def encode_top(self, x, training=None) -> tfd.Distribution:
        y = self._onehot()
        shape = tf.concat([tf.shape(x)[:-1], [self.num_classes]], 0)
        channels = tf.broadcast_to(y[:, None, None, :], shape)
        return self.posterior_head.distribution(
            self.encoder(tf.concat([x, channels], -1), training=training))

    def encode(self, x, training=None) -> tfd.Distribution:
        """q(z | x, y)."""
        return self.encode_top(x, training)

    def decode(self, z, training=None):
        """Likelihood parameters of p(x | z, y) for latents ``[..., B, L]``."""
        lead = tf.shape(z)[:-1]
        y = tf.broadcast_to(self._onehot(), tf.concat([lead, [self.num_classes]], 0))
        inputs = tf.reshape(tf.concat([z, y], -1), [-1, self.latent_dim + self.num_classes])
        logits = self.decoder(inputs, training=training)
        return tf.reshape(logits, tf.concat([lead, self.param_shape], 0))

    def call(self, inputs, training=None):
        """Reconstruction means for ``(images, labels)``."""
        x, labels = inputs
        with self.conditioned(labels):
            return super().call(x, training=training)

    def training_terms(self, data, beta) -> estimators_lib.Terms:
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        with self.conditioned(labels):
            return super().training_terms(x, beta)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        with self.conditioned(labels):
            return super().test_step(x)

    def sample(self, n, mean=True, seed=None, temperature=1.0, labels=None):
        """``n`` images of the given ``labels`` ``[n]`` (default: classes 0, 1, ..., in turn)."""
        if labels is None:
            labels = tf.range(n) % self.num_classes
        with self.conditioned(labels):
            return super().sample(n, mean=mean, seed=seed, temperature=temperature)

    def reconstruct(self, x, labels=None):
        return self((x, labels), training=False)


class SemiSupervisedVAE(ConditionalVAE):
    """The M2 model of Kingma, Rezende, Mohamed and Welling [1]: y a class that is observed for
    some images and a latent for the others, p(y) uniform over K classes, p(z) the prior,
    p(x | y, z) and q(z | x, y) as in `ConditionalVAE`, and a classifier q(y | x) (a network of
    ``model.network``'s kind). The bounds (per image, nats):

        labelled    L(x, y) = E_q(z|x,y)[log p(x|y,z)] - KL(q(z|x,y) || p(z)) + log p(y),
        unlabelled  U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)),

    the sum over y done exactly by enumerating the K classes (one batched pass of K x B), or in
    training by the score function or a Gumbel-softmax relaxation (``label_estimator``,
    `tfvae.label_estimators`). The training objective per step estimates the paper's J^alpha / N over the data set, with a
    batch of every training image as unlabelled and a batch of the labelled ones:

            mean_u [-U] + (N_l / N) mean_l [-L] + (alpha / N) N_l mean_l [-log q(y|x)],

    alpha / N = ``classifier_weight`` (0.1 in the paper). Reported: ``elbo`` = U (a bound on
    log p(x) whatever the labels), ``elbo_labelled``, ``classification_loss`` in training and
    ``classification_error`` in evaluation. Warm-up's beta weighs the rate of z.

    References:
      [1] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep
          Generative Models. NeurIPS.
    """

    semi_supervised = labelled_stream = True
    extra_metric_names = ("classification_loss", "elbo_labelled", "classification_error")

    def __init__(self, *args, classifier, classifier_weight: float = 0.1, num_labelled: int = 1,
                 num_train: int = 1, label_estimator: str = "enumerate",
                 label_temperature: float = 0.5, **kwargs):
        label_estimators.LABEL_ESTIMATORS.get(label_estimator)
        if not label_temperature > 0:
            raise ConfigError(f"model.label_temperature={label_temperature} must be > 0")
        self.label_estimator, self.label_temperature = label_estimator, float(label_temperature)
        super().__init__(*args, **kwargs)
        self.classifier = classifier
        self.classifier_weight = float(classifier_weight)
        self.num_labelled, self.num_train = int(num_labelled), max(int(num_train), 1)

    def classify(self, x, training=None):
        """Logits of q(y | x), ``[B, K]``."""
        return self.classifier(x, training=training)

    def log_prior_of_labels(self):
        return -tf.math.log(tf.cast(self.num_classes, tf.float32))

    def labelled_terms(self, x, labels, beta=1.0, training=False, seed=None):
        """L(x, y) as `Terms` (its elbo includes log p(y))."""
        with self.conditioned(labels):
            t = estimators_lib.elbo_decomposition(self, x, beta, training, seed)
        log_p_y = self.log_prior_of_labels()
        return t._replace(loss=t.loss - log_p_y, elbo=t.elbo + log_p_y,
                          distortion=t.distortion, rate=t.rate - log_p_y)

    def unlabelled_terms(self, x, beta=1.0, training=False, seed=None, logits=None,
                         estimator="enumerate"):
        """U(x) as `Terms` by a `tfvae.label_estimators` estimator (``enumerate``: exact in y,
        D = sum_y q(y|x) D(x, y), R = sum_y q(y|x) R_z(x, y) + KL(q(y|x) || p(y)),
        elbo = U = -(D + R)); the loss weighs the rate of z by ``beta``."""
        logits = self.classify(x, training) if logits is None else logits
        return label_estimators.LABEL_ESTIMATORS.get(estimator)(
            self, x, logits, beta, training, seed, temperature=self.label_temperature)

    def training_terms(self, data, beta) -> estimators_lib.Terms:
        unlabelled, (x_l, y_l) = data
        x_u, _, _ = keras.utils.unpack_x_y_sample_weight(unlabelled)
        u = self.unlabelled_terms(x_u, beta, training=True, estimator=self.label_estimator)
        lab = self.labelled_terms(x_l, y_l, beta, training=True)
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(y_l, tf.int32), self.classify(x_l, training=True)))
        loss = (u.loss + self.num_labelled / self.num_train * lab.loss
                + self.classifier_weight * self.num_labelled * ce)
        return u._replace(loss=loss, extras={"classification_loss": ce,
                                             "elbo_labelled": tf.reduce_mean(lab.elbo)})

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.classify(x, training=False)
        terms = self.unlabelled_terms(x, logits=logits)
        error = tf.reduce_mean(tf.cast(tf.argmax(logits, -1, output_type=tf.int32)
                                       != tf.cast(labels, tf.int32), tf.float32))
        return self._update(terms._replace(extras={"classification_error": error}),
                            tf.constant(1.0))

    def elbo_terms(self, x, seed=None) -> estimators_lib.Terms:
        """U(x): the bound on log p(x) with y summed out."""
        return self.unlabelled_terms(x, seed=seed)

    def log_likelihood(self, x, num_samples=1000, chunk_size=None, seed=None, labels=None):
        """log p(x) = log sum_y p(y) p(x|y), y enumerated exactly and each p(x|y) by importance
        sampling with q(z|x,y) (k = ``num_samples`` each): a lower bound in expectation
        (Jensen), tight as k grows. With ``labels``: log p(x|y) of those labels."""
        if labels is not None:
            return super().log_likelihood(x, num_samples, chunk_size, seed, labels)
        x = tf.convert_to_tensor(x, tf.float32)
        n = tf.shape(x)[0]
        per_class = [super(SemiSupervisedVAE, self).log_likelihood(
            x, num_samples, chunk_size, None if seed is None else (seed[0], seed[1] + 7919 * c),
            tf.fill([n], c)) for c in range(self.num_classes)]
        return tf.reduce_logsumexp(tf.stack(per_class, -1), -1) + self.log_prior_of_labels()

    def parameter_groups(self):
        groups = super().parameter_groups()
        groups["inference"] = groups["inference"] + self.classifier.trainable_variables
        return groups


class AnnotatedMixtureVAE(LabelContext, VAE):
    """A VAE whose mixture prior (``mog`` or ``vamp``, one component per class) has its
    components tied to the classes by the labels that exist: p(z | y = c) is component c, and
    an unlabelled image's prior is the whole mixture, p(z) = sum_c pi_c p(z | y = c) (y summed
    out exactly). Each step takes a batch of all training images (the mixture prior) and a
    batch of the labelled ones (their components), weighted equally, so that each component
    comes to generate its class. ``classify`` reads the class off the components'
    responsibilities at the posterior mean, p(c | z = E_q[z])."""

    labelled_stream = True
    extra_metric_names = ("elbo_labelled", "classification_error")

    def prepare_labels(self, labels):
        """Labels ``[B]``, -1 for unlabelled: each image's prior is then its component."""
        return tf.cast(labels, tf.int32)

    def log_prior_fn(self):
        logits, loc, scale = self.prior.mixture_parameters()
        mixture = lambda z: priors.diagonal_gaussian_mixture_log_prob(  # noqa: E731
            z, logits, loc, scale)
        if self._labels is None:
            return mixture
        labels = self._labels
        known = labels >= 0
        c = tf.maximum(labels, 0)
        component = tfd.Independent(tfd.Normal(
            tf.gather(loc, c), tf.gather(tf.broadcast_to(scale, tf.shape(loc)), c)), 1)
        return lambda z: tf.where(known, component.log_prob(z), mixture(z))

    def classify(self, x, training=None):
        """Logits of p(c | z) at z = the posterior mean, ``[B, K]``."""
        z = posteriors.code(self.encode(x, training=training))
        logits, loc, scale = self.prior.mixture_parameters()
        per = tfd.Independent(tfd.Normal(loc, tf.broadcast_to(scale, tf.shape(loc))), 1)
        return tf.nn.log_softmax(logits) + per.log_prob(z[:, None, :])

    def labelled_terms(self, x, labels, beta=1.0, training=False, seed=None):
        with self.conditioned(labels):
            return estimators_lib.elbo_decomposition(self, x, beta, training, seed)

    def training_terms(self, data, beta) -> estimators_lib.Terms:
        unlabelled, (x_l, y_l) = data
        x_u, _, _ = keras.utils.unpack_x_y_sample_weight(unlabelled)
        u = self.estimator.terms(self, x_u, beta=beta, training=True)
        with self.conditioned(y_l):
            lab = self.estimator.terms(self, x_l, beta=beta, training=True)
        return u._replace(loss=u.loss + lab.loss,
                          extras={**u.extras, "elbo_labelled": tf.reduce_mean(lab.elbo)})

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        terms = self.elbo_terms(x)
        error = tf.reduce_mean(tf.cast(tf.argmax(self.classify(x), -1, output_type=tf.int32)
                                       != tf.cast(labels, tf.int32), tf.float32))
        return self._update(terms._replace(extras={"classification_error": error}),
                            tf.constant(1.0))


def build(config, image_shape, steps_per_epoch=0, train_images=None,
          num_classes: int = 0, num_labelled: int = 0, num_train: int = 0) -> VAE:
    """Builds a `VAE` from a full tfvae config (``config.model``, ``config.train``): a
    `HierarchicalVAE` where ``model.latent_dims`` has more than one layer.

    ``steps_per_epoch`` converts ``train.kl_warmup_epochs`` to optimiser steps; ``train_images``
    (a few, ``[K, H, W, C]``) are offered to priors that initialise from data.
    ``num_classes``: K of the labels, for a conditional or semi-supervised model
    (``model.conditional``, ``model.semi_supervised``); ``num_labelled`` of ``num_train``
    training images keep their label (the semi-supervised objective's weights).
    """
    m = config.model
    networks.validate(m)
    hierarchy.check(config)
    dims = tuple(int(d) for d in m.latent_dims)
    posterior = posteriors.build(m.posterior, dims[-1])
    likelihood = likelihoods.build(m.likelihood)
    if likelihood.binary_data and config.data.pixels == "continuous":
        raise ConfigError(
            f"model.likelihood.name={m.likelihood.name!r} is a distribution over {{0, 1}} but "
            "data.pixels='continuous' gives [0, 1] intensities; use data.pixels='binary' or "
            "'dynamic', or model.likelihood.name='continuous_bernoulli'")
    if likelihood.levels_data and config.data.pixels != "continuous":
        raise ConfigError(
            f"model.likelihood.name={m.likelihood.name!r} models the 256 grey levels of 8-bit "
            "pixels but "
            f"data.pixels={config.data.pixels!r} binarises them; use data.pixels='continuous'")
    semi = bool(m.semi_supervised)
    conditional = bool(m.conditional) or semi
    if conditional:
        _check_conditional(config, dims, num_classes, semi)
    encoder, decoder = networks.build(m, image_shape, posterior.params_size,
                                      likelihood.params_per_pixel, config.train.precision,
                                      extra_inputs=num_classes if conditional else 0)
    if len(dims) > 1:
        image_shape = tuple(int(d) for d in image_shape)
        decoder = hierarchy.Ladder(
            m.network, dims, image_shape,
            image_shape[:-1] + (image_shape[-1] * int(likelihood.params_per_pixel),),
            scale=m.posterior.scale, precision=config.train.precision, name="ladder")
    context = priors.PriorContext(
        image_shape=tuple(image_shape),
        posterior_fn=lambda x: posterior.distribution(encoder(x, training=False)),
        train_images=train_images)
    prior = priors.build(m.prior, dims[-1], context)
    cls, extra = VAE, {}
    if len(dims) > 1:
        cls = HierarchicalVAE
    elif semi:
        with precision_lib.scope(config.train.precision):
            classifier = networks.ENCODERS.create(m.network, image_shape=tuple(image_shape),
                                                  output_size=num_classes)
        cls, extra = SemiSupervisedVAE, {
            "num_classes": num_classes, "classifier": classifier,
            "classifier_weight": m.classifier_weight, "num_labelled": num_labelled,
            "num_train": num_train, "label_estimator": m.label_estimator,
            "label_temperature": m.label_temperature}
    elif conditional:
        cls, extra = ConditionalVAE, {"num_classes": num_classes}
    elif m.prior.annotated:
        _check_annotated(config, dims, num_classes)
        cls, extra = AnnotatedMixtureVAE, {"num_classes": num_classes}
    model = cls(encoder, decoder, posterior, likelihood, prior,
                estimators_lib.build(config.estimator), image_shape,
                num_samples=m.num_samples, beta=config.train.beta,
                kl_warmup_steps=int(config.train.kl_warmup_epochs * steps_per_epoch), kl=m.kl,
                posterior_name=m.posterior.name, name="vae", **extra)
    x0 = tf.zeros((1,) + tuple(image_shape))
    model((x0, tf.zeros([1], tf.int32)) if conditional else x0)  # creates every variable
    return model


def _check_annotated(config, dims, num_classes):
    m = config.model
    if m.prior.name not in ("mog", "vamp"):
        raise ConfigError(f"model.prior.annotated=True ties a mixture's components to classes; "
                          f"model.prior.name={m.prior.name!r} is not one: use 'mog' or 'vamp'")
    if num_classes < 2 or m.prior.components != num_classes:
        raise ConfigError(f"model.prior.annotated=True needs one component per class: set "
                          f"model.prior.components={max(num_classes, 2)} (the data has "
                          f"{num_classes} classes; it is {m.prior.components})")
    if len(dims) > 1:
        raise ConfigError(f"model.prior.annotated=True with model.latent_dims={dims}: models "
                          "with labels have one latent layer for now; use one size")
    if str(config.data.labels) == "none":
        raise ConfigError("model.prior.annotated=True with data.labels='none': it needs some "
                          "labelled images; use data.labels=N (per class) or 'all'")


def _check_conditional(config, dims, num_classes, semi=False):
    m = config.model
    what = "model.semi_supervised=True" if semi else "model.conditional=True"
    if num_classes < 2:
        raise ConfigError(
            f"{what} needs labelled images of at least 2 classes, and these "
            f"have {num_classes}; use a source with labels (class subfolders, an .npz 'labels' "
            "array, a TFDS set with a 'label' feature)")
    if len(dims) > 1:
        raise ConfigError(f"{what} with model.latent_dims={dims}: models with labels have "
                          "one latent layer for now; use one size")
    if m.prior.name in ("vamp", "gtm_vamp"):
        raise ConfigError(
            f"model.prior.name={m.prior.name!r} with {what}: its components "
            "are q(z|u_k) of pseudo-inputs, which would each need a class; use "
            "standard_normal, mog, gtm or realnvp")
    if semi and config.estimator.name != "reparameterized":
        raise ConfigError(f"{what} sums y out exactly and takes z's path-wise gradient; use "
                          "estimator.name='reparameterized'")
    if semi and str(config.data.labels) == "none":
        raise ConfigError(f"{what} with data.labels='none': it needs some labelled images; "
                          "use data.labels=N (per class) or 'all'")
    if not semi and str(config.data.labels) != "all":
        raise ConfigError(
            f"model.conditional=True trains on every image's label, but data.labels="
            f"{config.data.labels!r} leaves some unlabelled; use data.labels='all'")
