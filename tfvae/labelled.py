"""The models with labels y in 0..K-1, each a `model.VAE` with the same interface inside
``with model.conditioned(labels):``:

- `ConditionalVAE` (``model.conditional``): p(x, z | y), q(z | x, y) [1, 2];
- `SemiSupervisedVAE` (``model.semi_supervised``): M2 [2], y observed for some images and a
  latent class for the others, with a classifier q(y | x);
- `AnnotatedMixtureVAE` (``model.prior.annotated``): a mixture prior whose component c is
  tied to class c by the labels that exist.

Each refuses in one line what it cannot take (`check_config`) and names its own constructor
arguments (`config_kwargs`); `tfvae.builder` makes them.

References:
  [1] Sohn, Lee and Yan (2015). Learning Structured Output Representation using Deep
      Conditional Generative Models. NeurIPS.
  [2] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep
      Generative Models. NeurIPS.
"""
import contextlib
from typing import Optional

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import estimators as estimators_lib
from tfvae import label_estimators, networks, posteriors, priors
from tfvae import precision as precision_lib
from tfvae.errors import ConfigError
from tfvae.model import VAE, HierarchicalVAE

# ``model.labelled_bound_weight`` -> the weight of the labelled images' mean bound, given N_l
# labelled of N training images: 'paper' as eq. 8 of Kingma et al. (2014) sums the bounds over
# the data set; 'equal' as the public re-implementations weigh the two batches' means.
LABELLED_BOUND_WEIGHTS = {"paper": lambda n_labelled, n: n_labelled / n,
                          "equal": lambda n_labelled, n: 1.0}

tfd = tfp.distributions


def _check_labels(what: str, config, num_classes: int, layers_ok: bool = True) -> None:
    """What every model with labels needs: labelled images of 2 or more classes (and, where
    ``layers_ok`` is False, one latent layer)."""
    dims = tuple(int(d) for d in config.model.latent_dims)
    if num_classes < 2:
        raise ConfigError(
            f"{what} needs labelled images of at least 2 classes, and these "
            f"have {num_classes}; use a source with labels (class subfolders, an .npz 'labels' "
            "array, a TFDS set with a 'label' feature)")
    if len(dims) > 1 and not layers_ok:
        raise ConfigError(f"{what} with model.latent_dims={dims}: it has one latent layer "
                          "(its prior's components are tied to the classes); use one size")


class LabelContext:
    """For the models with labels: ``with model.conditioned(labels):`` sets, for the block, the
    labels their methods read (``self._labels``, after ``prepare_labels``); None leaves them as
    they are. Tracing-friendly: the labels are tensors held while a function is traced."""

    def __init__(self, *args, num_classes: int, **kwargs):
        self.num_classes = int(num_classes)
        object.__setattr__(self, "_labels", None)  # not Keras-tracked attributes
        object.__setattr__(self, "_copies", 1)
        super().__init__(*args, **kwargs)

    def prepare_labels(self, labels):
        return labels

    @tf.autograph.experimental.do_not_convert
    @contextlib.contextmanager
    def conditioned(self, labels, copies: int = 1):
        """``copies`` > 1 says that the images of the block are that many class-major copies of
        one batch (``tf.tile(x, [copies, 1, 1, 1])``, as enumerating the classes makes them),
        which lets q(z|x,y) compute what depends on x alone once (`networks.call_joined`)."""
        if labels is None:
            yield
            return
        previous = self._labels, self._copies
        object.__setattr__(self, "_labels", self.prepare_labels(tf.convert_to_tensor(labels)))
        object.__setattr__(self, "_copies", int(copies))
        try:
            yield
        finally:
            object.__setattr__(self, "_labels", previous[0])
            object.__setattr__(self, "_copies", previous[1])


class ConditionalVAE(LabelContext, VAE):
    """A conditional VAE [1, 2]: q(z | x, y), p(x | z, y) and p(z | y) = p(z), for images x with
    labels y in 0..K-1. y enters the networks one-hot: into the encoder as K constant image
    channels (``model.label_input='channels'``, the default) or joined to its features where
    it flattens x (``'features'``, M2's [x, y]); into the decoder as K inputs appended to z.
    The prior is the configured p(z) for every class.

    Every method of the VAE applies, to p(x, z | y) and q(z | x, y), inside
    ``with model.conditioned(y):``; training, evaluation and `importance` do so with the labels
    of each batch, so the importance-sampled bound is one of log p(x | y).
    References: the module's [1, 2].
    """

    conditional = steps_read_labels = True
    flag = "model.conditional=True"

    def __init__(self, *args, label_input: str = "features", **kwargs):
        self.label_input = str(label_input)
        super().__init__(*args, **kwargs)

    @classmethod
    def check_config(cls, config, num_classes=0):
        m = config.model
        _check_labels(cls.flag, config, num_classes)
        if m.prior.name in ("vamp", "gtm_vamp"):
            raise ConfigError(
                f"model.prior.name={m.prior.name!r} with {cls.flag}: its components "
                "are q(z|u_k) of pseudo-inputs, which would each need a class; use "
                "standard_normal, mog, gtm or realnvp")
        if not cls.semi_supervised and str(config.data.labels) != "all":
            raise ConfigError(
                f"model.conditional=True trains on every image's label, but data.labels="
                f"{config.data.labels!r} leaves some unlabelled; use data.labels='all'")

    @classmethod
    def config_kwargs(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        return {"num_classes": num_classes, "label_input": config.model.label_input}

    def prepare_labels(self, labels):
        """Integer labels ``[B]`` one-hot, or (relaxed) one-hot ``[B, K]`` as they are."""
        if labels.dtype.is_integer:
            labels = tf.one_hot(labels, self.num_classes)
        return tf.cast(labels, tf.float32)

    def label_inputs(self):
        return self._onehot()

    def _onehot(self):
        if self._labels is None:
            raise ValueError("a ConditionalVAE needs labels: use it inside "
                             "`with model.conditioned(labels):`")
        return self._labels

    def encode_top(self, x, training=None) -> tfd.Distribution:
        y = self._onehot()
        if self.label_input == "channels":
            shape = tf.concat([tf.shape(x)[:-1], [self.num_classes]], 0)
            inputs = tf.concat([x, tf.broadcast_to(y[:, None, None, :], shape)], -1)
        elif self._copies > 1:  # x is class-major copies of one batch: its path once
            once = x[:tf.shape(x)[0] // self._copies]
            return self.posterior_head.distribution(
                networks.call_joined(self.encoder, once, y, training=training))
        else:
            inputs = [x, y]
        return self.posterior_head.distribution(self.encoder(inputs, training=training))

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
    """The M2 model of Kingma, Rezende, Mohamed and Welling [2]: y a class that is observed for
    some images and a latent for the others, p(y) uniform over K classes, p(z) the prior,
    p(x | y, z) and q(z | x, y) as in `ConditionalVAE`, and a classifier q(y | x) (a network of
    ``model.network``'s kind). The bounds (per image, nats):

        labelled    L(x, y) = E_q(z|x,y)[log p(x|y,z)] - KL(q(z|x,y) || p(z)) + log p(y),
        unlabelled  U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)),

    the sum over y done exactly by enumerating the K classes (one batched pass of K x B), or in
    training by the score function or a Gumbel-softmax relaxation (``label_estimator``,
    `tfvae.label_estimators`). The training objective per step estimates the paper's
    J^alpha = sum_l -L + sum_u -U + alpha E_l[-log q(y|x)] over the data set, divided by N,
    with a batch of every training image as unlabelled and a batch of the labelled ones:

            mean_u [-U] + (N_l / N) mean_l [-L] + (alpha / N) mean_l [-log q(y|x)],

    alpha / N = ``classifier_weight`` (the paper's alpha = 0.1 N: 0.1, as the authors' code
    weighs each labelled log q(y|x) by alpha N / N_l in a sum over the data set); with
    ``classifier_weight_per_labelled`` the weight is per labelled image instead, x N_l (the
    config's weight; the model holds the product). ``labelled_bound_weight='equal'`` weighs
    mean_l [-L] as mean_u [-U] (1 instead of N_l / N), as the public re-implementations of M2
    do (wohlert/semi-supervised-pytorch and its copies: mean L + mean U + alpha' mean CE).
    Reported: ``elbo`` = U (a bound on log p(x) whatever the labels), ``elbo_labelled``,
    ``classification_loss`` in training and ``classification_error`` in evaluation. Warm-up's
    beta weighs the rate of z.
    """

    semi_supervised = labelled_stream = True
    extra_metric_names = ("classification_loss", "elbo_labelled", "classification_error")
    flag = "model.semi_supervised=True"

    @classmethod
    def check_config(cls, config, num_classes=0):
        super().check_config(config, num_classes)
        if config.estimator.name != "reparameterized":
            raise ConfigError(f"{cls.flag} sums y out exactly and takes z's path-wise gradient; "
                              "use estimator.name='reparameterized'")
        if str(config.data.labels) == "none":
            raise ConfigError(f"{cls.flag} with data.labels='none': it needs some labelled "
                              "images; use data.labels=N (per class) or 'all'")
        if config.model.labelled_bound_weight not in LABELLED_BOUND_WEIGHTS:
            raise ConfigError(f"model.labelled_bound_weight={config.model.labelled_bound_weight!r}"
                              f" is not one of {', '.join(map(repr, LABELLED_BOUND_WEIGHTS))}")

    @classmethod
    def config_kwargs(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        """Its classifier q(y|x): an encoder of ``model.network``'s kind with K outputs."""
        m = config.model
        with precision_lib.scope(config.train.precision):
            classifier = networks.ENCODERS.create(m.network, image_shape=tuple(image_shape),
                                                  output_size=num_classes)
        return {**super().config_kwargs(config, image_shape=image_shape, num_classes=num_classes),
                "classifier": classifier,
                "classifier_weight": m.classifier_weight * (
                    num_labelled if m.classifier_weight_per_labelled else 1),
                "num_labelled": num_labelled, "num_train": num_train,
                "labelled_weight": LABELLED_BOUND_WEIGHTS[m.labelled_bound_weight](
                    num_labelled, max(num_train, 1)),
                "label_estimator": m.label_estimator,
                "label_temperature": m.label_temperature}

    def __init__(self, *args, classifier, classifier_weight: float = 0.1, num_labelled: int = 1,
                 num_train: int = 1, labelled_weight: Optional[float] = None,
                 label_estimator: str = "enumerate",
                 label_temperature: float = 0.5, **kwargs):
        label_estimators.LABEL_ESTIMATORS.get(label_estimator)
        if not label_temperature > 0:
            raise ConfigError(f"model.label_temperature={label_temperature} must be > 0")
        self.label_estimator, self.label_temperature = label_estimator, float(label_temperature)
        super().__init__(*args, **kwargs)
        self.classifier = classifier
        self.classifier_weight = float(classifier_weight)
        self.num_labelled, self.num_train = int(num_labelled), max(int(num_train), 1)
        # The weight of mean_l [-L(x, y)]: N_l / N unless given.
        self.labelled_weight = (self.num_labelled / self.num_train if labelled_weight is None
                                else float(labelled_weight))

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
        loss = (u.loss + self.labelled_weight * lab.loss
                + self.classifier_weight * ce)
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
    steps_read_labels = True  # its test step measures the classification error
    extra_metric_names = ("elbo_labelled", "classification_error")

    @classmethod
    def check_config(cls, config, num_classes=0):
        m = config.model
        if m.prior.name not in ("mog", "vamp"):
            raise ConfigError(f"model.prior.annotated=True ties a mixture's components to "
                              f"classes; model.prior.name={m.prior.name!r} is not one: use "
                              "'mog' or 'vamp'")
        if num_classes < 2 or m.prior.components != num_classes:
            raise ConfigError(f"model.prior.annotated=True needs one component per class: set "
                              f"model.prior.components={max(num_classes, 2)} (the data has "
                              f"{num_classes} classes; it is {m.prior.components})")
        _check_labels("model.prior.annotated=True", config, num_classes, layers_ok=False)
        if str(config.data.labels) == "none":
            raise ConfigError("model.prior.annotated=True with data.labels='none': it needs "
                              "some labelled images; use data.labels=N (per class) or 'all'")

    @classmethod
    def config_kwargs(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        return {"num_classes": num_classes}

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


class _LadderWithLabels:
    """A model with labels over several latent layers: the hierarchy's ``encode`` and
    ``decode``, which hand the one-hot labels to the ladder (q(z_l | x, z_{l+1}, y) and
    p(x | z_1..z_L, y); `tfvae.hierarchy.Ladder`); the top layer's q(z_L | x, y) is the
    labelled model's own encoder."""

    encode = HierarchicalVAE.encode
    decode = HierarchicalVAE.decode

    def posterior_example(self):
        with self.conditioned(tf.zeros([1], tf.int32)):
            return HierarchicalVAE.posterior_example(self)


class ConditionalHierarchicalVAE(_LadderWithLabels, ConditionalVAE, HierarchicalVAE):
    """`ConditionalVAE` with ``model.latent_dims`` of several layers."""


class SemiSupervisedHierarchicalVAE(_LadderWithLabels, SemiSupervisedVAE, HierarchicalVAE):
    """`SemiSupervisedVAE` (M2) with ``model.latent_dims`` of several layers."""

