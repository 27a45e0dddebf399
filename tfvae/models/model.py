"""The model: one `keras.Model` over a small graph of latent nodes (`tfvae.models.nodes`): the label
y where the config has one (its role, `tfvae.models.labels`), the latent layers z_L ... z_1 (a
`nodes.Layer` or `nodes.Chain`), and the images x. Only a model: how it is trained is its
estimator's (`tfvae.inference.estimators`) and `tfvae.inference.gradients`'; how it is measured, `tfvae.inference.importance`
and `tfvae.results.evaluation`, through the public methods below.

Shapes: images ``x`` are ``[B, H, W, C]``; latents carry a leading sample axis ``z: [S, B, L]``;
``q(z|x)`` has batch shape ``[B]``, ``p(x|z)`` batch shape ``[S, B]``, both with the natural event
shapes (``[L]`` and ``[H, W, C]``), so every ``log_prob`` broadcasts to ``[S, B]``. With several
latent layers z is the tuple ``(z_1, ..., z_L)``, bottom first (``join`` makes it one tensor).

The interface every estimator, importance sampler, diagnostic and export uses:

| method | what |
| --- | --- |
| ``encode(x)`` | the proposal q(z|x) (samples, ``log_prob``) |
| ``log_joint_fn()`` | ``(x, z) -> log p(x, z)``, the prior's parameters computed once |
| ``likelihood(z)``, ``prior`` | p(x|z), p(z_L) |
| ``rate(q, z)``, ``rates(q, z)`` | KL(q(z|x) || p(z)) per example; per latent layer |
| ``log_prior(z)`` | log p(z) |
| ``posterior_example()`` | q for one dummy input: its type says what an estimator may do |
| ``join(z)``, ``split(z)``, ``sample_latents(n)`` | the latents as one flat ``[..., sum d_l]`` |
| ``given(labels)`` | the same interface with y observed (a model whose networks read y needs it) |
| ``nodes`` | the model's `nodes.Node`s: family, parents and gradient of each |

What evaluation, figures, export and the CLI may ask of a model is its label role's
(``can_classify``, ``samples_by_class``, ``bound_given_labels``, ``steps_read_labels``, ...);
nothing outside the model, its nodes and the estimators asks which family a model is.
`tfvae.models.builder.build` makes any model from a config.
"""
import functools

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.errors import ConfigError
from tfvae.inference import estimators as estimators_lib
from tfvae.inference import importance
from tfvae.models import labels as labels_lib
from tfvae.models import nodes
from tfvae.models.steps import TrainingSteps

tfd = tfp.distributions

KL_MODES = ("auto", "analytic", "mc")


class VAE(TrainingSteps):
    """A variational auto-encoder of latent nodes, trained with `fit` through its estimator;
    tracks ``loss`` (with the warm-up's beta), ``elbo``, ``distortion`` D, ``rate`` R, ``beta``,
    each layer's rate and the estimator's and label role's own (``val_`` on validation data,
    at beta = 1, so ``val_loss = -val_elbo``).

    Args:
      encoder, decoder: images (and y) -> top posterior parameters; latents (and y) ->
        likelihood parameters ``[N, H, W, C * P]`` (for a `nodes.Chain`, the `hierarchy.Ladder`).
      posterior, likelihood, prior, estimator: the heads, the `priors.Prior`, an `Estimator`.
      latents: a `nodes.Layer` (default) or `nodes.Chain`; label: a `labels.LABELS` role.
      num_samples: latent samples S per example; beta: the rate's weight, ramped from 0 over
        ``kl_warmup_steps``; kl: 'analytic', 'mc' or 'auto' (analytic where TFP registers it).
    """

    def __init__(self, encoder, decoder, posterior, likelihood, prior, estimator, image_shape,
                 latents=None, label=None, num_samples=1, beta=1.0, kl_warmup_steps=0,
                 kl="auto", posterior_name="", **kwargs):
        super().__init__(**kwargs)
        _check_settings(kl, num_samples, beta)
        # Attribute names are the checkpoints' object paths: renaming one orphans old weights.
        self.encoder, self.decoder = encoder, decoder
        self.posterior_head, self.likelihood_head = posterior, likelihood
        self.prior, self.estimator = prior, estimator
        self.label = label if label is not None else labels_lib.NoLabel()
        self.latents = latents if latents is not None else nodes.Layer(posterior.latent_dim)
        for name, part in {**self.label.parts, **self.latents.parts}.items():  # e.g. classifier
            setattr(self, name, part)
        self.num_classes, self.label_input = self.label.num_classes, self.label.label_input
        self.image_shape = tuple(int(d) for d in image_shape)
        # Decoder outputs: the likelihood's parameters, P per pixel and channel.
        self.param_shape = self.image_shape[:-1] + (
            self.image_shape[-1] * int(getattr(likelihood, "params_per_pixel", 1)),)
        self.latent_dims = self.latents.latent_dims
        self.latent_dim = sum(self.latent_dims)  # of the flat view (`join`)
        self.num_samples, self.beta = int(num_samples), float(beta)
        self.kl_warmup_steps, self.posterior_name = int(kl_warmup_steps), posterior_name
        self.analytic_kl = analytic_kl(posterior, prior, kl)
        estimator.check(self)
        estimator.prepare(self)
        names = ("loss", "elbo", "distortion", "rate", "beta") + tuple(estimator.metric_names)
        names += self.rate_names() + tuple(self.label.metric_names)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.group_optimizers = {}

    # ------------------------------------------------------------------ what it offers
    steps_read_labels = property(lambda self: self.label.steps_read_labels)
    labelled_stream = property(lambda self: self.label.labelled_stream)
    can_classify = property(lambda self: self.label.can_classify)
    samples_by_class = property(lambda self: self.label.samples_by_class)
    bound_given_labels = property(lambda self: self.label.bound_given_labels)
    networks_read_labels = property(lambda self: self.label.conditions_networks)
    enumerates_labels = property(lambda self: self.label.enumerates)
    components_are_classes = property(lambda self: self.label.components_are_classes)

    @property
    def nodes(self):
        """The model's `nodes.Node`s, top first: y (if any), then z_L ... z_1."""
        y = self.label.node()
        z = self.latents.nodes(self, *self.estimator.gradient, self.label.conditions_networks)
        return ((y,) if y else ()) + z

    def given(self, labels, copies: int = 1):
        """The model with y observed as ``labels`` (``[B]`` integers, or (relaxed) one-hot
        ``[B, K]``; ``copies``: the images are that many class-major copies of one batch, as
        enumerating y makes them): a `Given` view with this interface. None: the model."""
        if labels is None:
            return self
        return Given(self, self.label.prepare(labels), copies)

    def _y(self, labels):
        """y as the networks read it (one-hot), or None where they do not read it."""
        if not self.label.conditions_networks:
            return None
        if labels is None:
            raise ValueError(f"this model's networks read the label y (model.label="
                             f"{self.label.name!r}): use model.given(labels)")
        return self.label.prepare(labels)

    # ------------------------------------------------------------------ the model
    def encode(self, x, training=None, labels=None, copies=1):
        """q(z|x) (given y), batch shape ``[B]``."""
        return self.latents.encode(self, x, training, self._y(labels), copies)

    def encode_top(self, x, training=None, labels=None, copies=1) -> tfd.Distribution:
        """q(z_L | x): the layer the prior p(z_L) scores."""
        return self.latents.encode_top(self, x, training, self._y(labels), copies)

    def decode(self, z, training=None, labels=None):
        """Likelihood parameters ``[..., H, W, C * P]`` for latents ``[..., L]`` (or layers)."""
        return self.latents.decode(self, z, training, self._y(labels))

    def likelihood(self, z, training=None, labels=None) -> tfd.Distribution:
        """p(x|z), batch shape ``z.shape[:-1]``, event shape ``[H, W, C]``."""
        return self.likelihood_head.distribution(self.decode(z, training, labels))

    def top_log_prior_fn(self, labels=None):
        """``z_L -> log p(z_L)`` (of y's component for a ``component`` label)."""
        return self.label.top_log_prior_fn(self, labels)

    def log_prior_fn(self, labels=None, training=False):
        """``z -> log p(z)`` with the prior's parameters computed once."""
        return self.latents.log_prior_fn(self, self.top_log_prior_fn(labels), training)

    def log_prior(self, z, labels=None):  # log p(z), shape z.shape[:-1]
        return self.log_prior_fn(labels)(z)

    def top_rate(self, q_top, z_top, labels=None):
        """KL(q(z_L|x) || p(z_L)) per example ``[B]``: analytic, or averaged over samples."""
        if self.analytic_kl:
            return tfd.kl_divergence(q_top, self.prior.distribution())
        return tf.reduce_mean(q_top.log_prob(z_top) - self.top_log_prior_fn(labels)(z_top), 0)

    def rates(self, q, z, labels=None):
        """The rate of each latent layer, bottom first, each ``[B]``."""
        return self.latents.rates(self, q, z, functools.partial(self.top_rate, labels=labels))

    def rate(self, q, z, labels=None):  # the sum of `rates`, [B]
        return tf.add_n(self.rates(q, z, labels))

    def rate_names(self):  # of the per-layer rates (none for one layer)
        return self.latents.rate_names()

    def log_joint_fn(self, training=False, labels=None):
        """``(x, z) -> log p(x, z)``, the prior's parameters (a VampPrior's pass) computed once."""
        log_prior = self.log_prior_fn(labels, training)
        return lambda x, z: (self.likelihood(z, training, labels).log_prob(x) + log_prior(z))

    def log_prob(self, z, x, labels=None):  # log p(x, z), shape z.shape[:-1]
        return self.log_joint_fn(labels=labels)(x, z)

    def code_statistics(self, q):  # (loc, scale) of q(z|x), flat: `nodes.Layer.code_statistics`
        return self.latents.code_statistics(q)

    def code(self, q):  # a point code per example: `code_statistics`' location
        return self.code_statistics(q)[0]

    def conditional_priors(self, z):
        """p(z_l | z_{l+1}), l < L, at the parents in ``z``, bottom first (none for one)."""
        return self.latents.conditional_priors(self, z)

    def posterior_example(self) -> tfd.Distribution:  # its type: what an estimator may do
        return self.latents.posterior_example(self)

    def join(self, z):  # the latents as one tensor [..., sum d_l]
        return self.latents.join(z)

    def split(self, flat):  # the inverse of `join`
        return self.latents.split(flat)

    def sample_latents(self, n, seed=None, temperature=1.0):
        """``n`` draws z ~ p(z) as one flat tensor ``[n, latent_dim]``."""
        return self.latents.sample_latents(self, n, seed, temperature)

    def call(self, inputs, training=None):
        """Reconstruction means E[x | z = code of q(z|x)] for images, or ``(images, labels)``."""
        x, labels = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        z = self.code(self.encode(x, training, labels))
        return self.likelihood(z, training, labels).mean()

    # ------------------------------------------------------------------ measuring and using
    def elbo_terms(self, x, seed=None, labels=None) -> estimators_lib.Terms:
        """The ELBO decomposition at beta = 1 (evaluation mode), per example, whatever the
        training estimator, so that every model is measured the same way (for M2, U(x) with
        y summed out). ``seed``: a stateless seed (shape [2]) makes the draw reproducible."""
        return self.label.elbo_terms(self, x, seed, labels)

    def labelled_terms(self, x, labels, beta=1.0, training=False, seed=None):
        """The bound of images with their labels (with log p(y) for M2), as `Terms`."""
        return self.label.labelled_terms(self, x, labels, beta, training, seed)

    def classify(self, x, training=None):
        """Logits ``[B, K]`` of the class of each image, where ``can_classify``."""
        return self.label.classify(self, x, training)

    def log_likelihood(self, x, num_samples=1000, chunk_size=None, seed=None, labels=None):
        """IS bound on log p(x) (log p(x|y) given ``labels``; y enumerated where it is latent)
        per example ``[B]``, `tfvae.inference.importance`; ``seed``: a pair of ints."""
        return self.label.log_likelihood(self, x, num_samples, chunk_size or 0, seed, labels)

    def log_weights(self, x, num_samples: int, chunk_size=None, seed=None, labels=None):
        """All k importance log-weights ``[k, B]`` (`tfvae.inference.importance.log_weights`)."""
        return importance.log_weights(self, x, num_samples, chunk_size or 0, seed, labels)

    def sample(self, n, mean=True, seed=None, temperature=1.0, labels=None):
        """``n`` images: z ~ p(z) (at ``temperature``), then the mean (or a sample) of p(x|z);
        of ``labels`` ``[n]`` where ``samples_by_class`` (default: classes 0, 1, ...)."""
        if labels is None and self.label.samples_by_class:
            labels = tf.range(n) % self.num_classes
        z = self.sample_latents(n, seed=seed, temperature=temperature)
        px = self.likelihood(z, training=False, labels=labels)
        return px.mean() if mean else px.sample(seed=seed)

    def reconstruct(self, x, labels=None):
        """Mean of p(x | z = code of q(z|x)) (given y where the networks read it)."""
        if self.label.conditions_networks:
            return self((x, labels), training=False)
        return self(x, training=False)


def _check_settings(kl, num_samples, beta) -> None:
    if kl not in KL_MODES:
        raise ConfigError(f"model.kl={kl!r}; valid modes are: {', '.join(KL_MODES)}")
    if num_samples < 1:
        raise ConfigError(f"model.num_samples={num_samples} must be >= 1")
    if beta < 0:
        raise ConfigError(f"train.beta={beta} must be >= 0")


def analytic_kl(posterior, prior, mode: str) -> bool:
    """Whether the top layer's rate is TFP's analytic KL(q || p): for ``mode`` 'auto' where
    TFP registers one, 'analytic' (refused in one line where it does not), 'mc' never."""
    if mode == "mc":
        return False
    try:
        tfd.kl_divergence(posterior.distribution(tf.zeros([1, posterior.params_size])),
                          prior.distribution())
        return True
    except (NotImplementedError, ValueError):  # ValueError: a belief network's q(b_1|x), p(b_L)
        if mode == "analytic":
            raise ConfigError(
                f"model.kl='analytic' but TFP registers no KL between the posterior and the "
                f"prior {type(prior).__name__}; use model.kl='auto' or 'mc'") from None
        return False


class Given:
    """A model with its label y observed (``model.given(labels)``; Pyro's ``condition``): the
    model's interface, every method that depends on y bound to ``labels`` (prepared by the
    label role: one-hot, or component indices). Immutable: nothing in the model changes."""

    BOUND = ("encode", "encode_top", "decode", "likelihood", "top_log_prior_fn", "log_prior_fn",
             "log_prior", "top_rate", "rates", "rate", "log_joint_fn", "log_prob", "elbo_terms",
             "sample", "reconstruct", "log_likelihood", "log_weights")

    def __init__(self, model, labels, copies: int = 1):
        self.model, self.labels, self.copies = model, labels, int(copies)

    def __getattr__(self, name):
        attr = getattr(self.model, name)
        if name in ("encode", "encode_top"):
            return functools.partial(attr, labels=self.labels, copies=self.copies)
        if name in self.BOUND:
            return functools.partial(attr, labels=self.labels)
        return attr

    def posterior_example(self):
        return self.model.posterior_example()

    def given(self, labels, copies: int = 1):
        return self.model.given(labels, copies)
