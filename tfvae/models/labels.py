"""The label node y in 0..K-1 and its roles, chosen by name (``config.model.label``):

| role | y is | networks read y | gradient of y | a training batch |
| --- | --- | --- | --- | --- |
| ``none`` | not in the model | | | images |
| ``observed`` | observed for every image: p(x, z \\| y), q(z \\| x, y) [1, 2] | yes | observed | (images, labels) |
| ``latent`` | M2 [2]: observed where labelled, else latent with q(y \\| x) | yes | enumerated, score function or relaxed (``model.label_estimator``) | all images, and the labelled ones |
| ``component`` | the index of a mixture prior's component (``mog``, ``vamp``) | no | enumerated (the mixture sums it), observed where labelled | all images, and the labelled ones |

A role is a plain object over the model (`tfvae.models.model.VAE`): it refuses in one line the config
it cannot take (`check`), makes its own parts (`from_config`: M2's classifier q(y|x)), says
what the model offers (``steps_read_labels``, ``can_classify``, ``samples_by_class``, ...) and
gives the model's terms for a batch. Everything else reaches y through ``model.given(labels)``,
the model with y observed (Pyro's ``condition``): no hidden state.

References:
  [1] Sohn, Lee and Yan (2015). Learning Structured Output Representation using Deep
      Conditional Generative Models. NeurIPS.
  [2] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep Generative
      Models. NeurIPS.
"""
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import precision as precision_lib
from tfvae.distributions import priors
from tfvae.errors import ConfigError
from tfvae.inference import estimators as estimators_lib
from tfvae.inference import importance, label_estimators
from tfvae.models import networks, nodes
from tfvae.registry import Registry

tfd = tfp.distributions

LABELS = Registry("label role", field="model.label")

# ``model.labelled_bound_weight`` -> the weight of the labelled images' mean bound, given N_l
# labelled of N training images: 'paper' as eq. 8 of Kingma et al. (2014) sums the bounds over
# the data set; 'equal' as the public re-implementations weigh the two batches' means.
LABELLED_BOUND_WEIGHTS = {"paper": lambda n_labelled, n: n_labelled / n,
                          "equal": lambda n_labelled, n: 1.0}

# How M2 trains q(y|x) on unlabelled images (`tfvae.inference.label_estimators`) -> the node's gradient.
LABEL_GRADIENTS = {"enumerate": ("enumerated", "sum over the K classes"),
                   "score_function": ("score_function",
                                      "two draws, each the other's baseline"),
                   "gumbel_softmax": ("relaxed", "Gumbel-softmax (Concrete)")}


def _unpack(data):
    return keras.utils.unpack_x_y_sample_weight(data)[:2]


def _error(logits, labels):
    return tf.reduce_mean(tf.cast(tf.argmax(logits, -1, output_type=tf.int32)
                                  != tf.cast(labels, tf.int32), tf.float32))


@LABELS.register("none")
class NoLabel:
    """No label in the model: images alone."""

    name = "none"
    conditions_networks = False   # the encoder and decoder read one-hot y
    steps_read_labels = False     # its train and test steps take (images, labels) batches
    labelled_stream = False       # it trains on (a batch of all images, one of labelled ones)
    can_classify = False          # `classify(x)` gives logits over the K classes
    samples_by_class = False      # `sample(n, labels=...)` draws images of given classes
    bound_given_labels = False    # its ELBO and IS bound are of log p(x | y)
    enumerates = False            # its IS bound sums y out by enumerating the classes
    components_are_classes = False  # its prior's component c is class c
    metric_names = ()
    parts = {}
    num_classes, label_input = 0, "channels"

    @classmethod
    def check(cls, config, num_classes: int = 0) -> None:
        """Refuses, with one line, a config this role cannot take (``num_classes`` of the
        data's labels, 0 without)."""

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        return cls()

    def node(self):
        """The `nodes.Node` of y, or None."""
        return None

    def prepare(self, labels):
        return labels

    def top_log_prior_fn(self, model, labels=None):
        """``z_L -> log p(z_L)`` (given y where the role ties the prior to it)."""
        return model.prior.log_prob_fn()

    def variables(self, model):
        """The role's own trainable inference variables."""
        return []

    def training_terms(self, model, data, beta) -> estimators_lib.Terms:
        x, _ = _unpack(data)
        return model.estimator.terms(model, x, beta=beta, training=True)

    def test_terms(self, model, data) -> estimators_lib.Terms:
        x, _ = _unpack(data)
        return model.elbo_terms(x)

    def elbo_terms(self, model, x, seed=None, labels=None) -> estimators_lib.Terms:
        return estimators_lib.elbo_decomposition(model.given(labels), x, seed=seed)

    def log_likelihood(self, model, x, num_samples, chunk, seed, labels=None):
        return importance.log_likelihood(model, x, num_samples, chunk, seed, labels)

    def classify(self, model, x, training=None):
        raise ConfigError(f"model.label={self.name!r} has no classifier; use model.label="
                          "'latent' (M2) or 'component' (an annotated mixture)")

    def labelled_terms(self, model, x, labels, beta=1.0, training=False, seed=None):
        return estimators_lib.elbo_decomposition(model.given(labels), x, beta, training, seed)


def _check_labels(what: str, config, num_classes: int, layers_ok: bool = True) -> None:
    """What every role with labels needs: labelled images of 2 or more classes (and, where
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


@LABELS.register("observed")
class ObservedLabel(NoLabel):
    """A conditional VAE [1, 2]: q(z | x, y), p(x | z, y), p(z | y) = p(z), y observed for every
    image. y enters the networks one-hot: into the encoder as K constant image channels
    (``model.label_input='channels'``) or joined to its features where it flattens x
    (``'features'``, M2's [x, y]); into the decoder as K inputs appended to z. Its bounds are
    of log p(x | y)."""

    name = "observed"
    conditions_networks = steps_read_labels = samples_by_class = bound_given_labels = True

    def __init__(self, num_classes: int, label_input: str = "channels"):
        self.num_classes, self.label_input = int(num_classes), str(label_input)

    @classmethod
    def check(cls, config, num_classes=0):
        m = config.model
        what = f"model.label={cls.name!r}"
        _check_labels(what, config, num_classes)
        if m.prior.name in ("vamp", "gtm_vamp"):
            raise ConfigError(
                f"model.prior.name={m.prior.name!r} with {what}: its components are q(z|u_k) "
                "of pseudo-inputs, which would each need a class; use standard_normal, mog, "
                "gtm or realnvp")
        if cls is ObservedLabel and str(config.data.labels) != "all":
            raise ConfigError(
                f"{what} trains on every image's label, but data.labels="
                f"{config.data.labels!r} leaves some unlabelled; use data.labels='all' or "
                "model.label='latent' (M2)")

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        return cls(num_classes, config.model.label_input)

    def node(self):
        return nodes.Node("y", "categorical", (), "observed")

    def prepare(self, labels):
        """Integer labels ``[B]`` one-hot, or (relaxed) one-hot ``[B, K]`` as they are."""
        labels = tf.convert_to_tensor(labels)
        if labels.dtype.is_integer:
            labels = tf.one_hot(labels, self.num_classes)
        return tf.cast(labels, tf.float32)

    def training_terms(self, model, data, beta):
        x, y = _unpack(data)
        return model.estimator.terms(model.given(y), x, beta=beta, training=True)

    def test_terms(self, model, data):
        x, y = _unpack(data)
        return estimators_lib.elbo_decomposition(model.given(y), x)


@LABELS.register("latent")
class LatentLabel(ObservedLabel):
    """M2 [2]: y observed for some images and a latent class for the others, p(y) uniform over
    K classes, p(x | y, z) and q(z | x, y) as ``observed``'s, and a classifier q(y | x) (a
    network of ``model.network``'s kind). The bounds (per image, nats):

        labelled    L(x, y) = E_q(z|x,y)[log p(x|y,z)] - KL(q(z|x,y) || p(z)) + log p(y),
        unlabelled  U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)),

    the sum over y exact by enumerating the K classes, or in training by the score function or
    a Gumbel-softmax relaxation (``model.label_estimator``, `tfvae.inference.label_estimators`). Each step
    estimates the paper's J^alpha over the data set, divided by N, from a batch of every
    training image (as unlabelled) and a batch of the labelled ones:

            mean_u [-U] + w_l mean_l [-L] + (alpha / N) mean_l [-log q(y|x)],

    w_l = N_l / N (``labelled_bound_weight='paper'``) or 1 (``'equal'``, as the public
    re-implementations of M2 weigh it); alpha / N = ``classifier_weight`` (the paper's
    alpha = 0.1 N: 0.1), x N_l with ``classifier_weight_per_labelled``. Reported: ``elbo`` = U
    (a bound on log p(x) whatever the labels), ``elbo_labelled``, ``classification_loss`` in
    training and ``classification_error`` in evaluation. Warm-up's beta weighs the rate of z.
    """

    name = "latent"
    bound_given_labels = False
    labelled_stream = can_classify = enumerates = True
    metric_names = ("classification_loss", "elbo_labelled", "classification_error")

    def __init__(self, num_classes, label_input="channels", *, classifier,
                 classifier_weight: float = 0.1, labelled_weight: float = 1.0,
                 label_estimator: str = "enumerate", label_temperature: float = 0.5):
        super().__init__(num_classes, label_input)
        label_estimators.LABEL_ESTIMATORS.get(label_estimator)
        if not label_temperature > 0:
            raise ConfigError(f"model.label_temperature={label_temperature} must be > 0")
        self.parts = {"classifier": classifier}
        self.classifier_weight, self.labelled_weight = float(classifier_weight), labelled_weight
        self.label_estimator, self.label_temperature = label_estimator, float(label_temperature)

    @classmethod
    def check(cls, config, num_classes=0):
        super().check(config, num_classes)
        what = f"model.label={cls.name!r}"
        if config.estimator.name != "reparameterized":
            raise ConfigError(f"{what} sums y out exactly and takes z's path-wise gradient; "
                              "use estimator.name='reparameterized'")
        if str(config.data.labels) == "none":
            raise ConfigError(f"{what} with data.labels='none': it needs some labelled "
                              "images; use data.labels=N (per class) or 'all'")
        if config.model.labelled_bound_weight not in LABELLED_BOUND_WEIGHTS:
            raise ConfigError(f"model.labelled_bound_weight={config.model.labelled_bound_weight!r}"
                              f" is not one of {', '.join(map(repr, LABELLED_BOUND_WEIGHTS))}")

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        """Its classifier q(y|x): an encoder of ``model.network``'s kind with K outputs."""
        m = config.model
        with precision_lib.scope(config.train.precision):
            classifier = networks.ENCODERS.create(m.network, image_shape=tuple(image_shape),
                                                  output_size=num_classes)
        return cls(num_classes, m.label_input, classifier=classifier,
                   classifier_weight=m.classifier_weight * (
                       num_labelled if m.classifier_weight_per_labelled else 1),
                   labelled_weight=LABELLED_BOUND_WEIGHTS[m.labelled_bound_weight](
                       num_labelled, max(num_train, 1)),
                   label_estimator=m.label_estimator, label_temperature=m.label_temperature)

    def node(self):
        gradient, detail = LABEL_GRADIENTS[self.label_estimator]
        return nodes.Node("y", "categorical", ("x",), gradient, detail)

    def log_prior_of_labels(self):
        return -tf.math.log(tf.cast(self.num_classes, tf.float32))

    def classify(self, model, x, training=None):
        """Logits of q(y | x), ``[B, K]``."""
        return model.classifier(x, training=training)

    def variables(self, model):
        return model.classifier.trainable_variables

    def labelled_terms(self, model, x, labels, beta=1.0, training=False, seed=None):
        """L(x, y) as `Terms` (its elbo includes log p(y))."""
        t = super().labelled_terms(model, x, labels, beta, training, seed)
        log_p_y = self.log_prior_of_labels()
        return t._replace(loss=t.loss - log_p_y, elbo=t.elbo + log_p_y, rate=t.rate - log_p_y)

    def unlabelled_terms(self, model, x, beta=1.0, training=False, seed=None, logits=None,
                         estimator="enumerate"):
        """U(x) as `Terms` by a `tfvae.inference.label_estimators` estimator (``enumerate``: exact in y)."""
        logits = self.classify(model, x, training) if logits is None else logits
        return label_estimators.LABEL_ESTIMATORS.get(estimator)(
            model, x, logits, beta, training, seed, temperature=self.label_temperature)

    def training_terms(self, model, data, beta):
        unlabelled, (x_l, y_l) = data
        x_u, _ = _unpack(unlabelled)
        u = self.unlabelled_terms(model, x_u, beta, training=True,
                                  estimator=self.label_estimator)
        lab = self.labelled_terms(model, x_l, y_l, beta, training=True)
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(y_l, tf.int32), self.classify(model, x_l, training=True)))
        loss = u.loss + self.labelled_weight * lab.loss + self.classifier_weight * ce
        return u._replace(loss=loss, extras={"classification_loss": ce,
                                             "elbo_labelled": tf.reduce_mean(lab.elbo)})

    def test_terms(self, model, data):
        x, labels = _unpack(data)
        logits = self.classify(model, x, training=False)
        terms = self.unlabelled_terms(model, x, logits=logits)
        return terms._replace(extras={"classification_error": _error(logits, labels)})

    def elbo_terms(self, model, x, seed=None, labels=None):
        """U(x): the bound on log p(x) with y summed out (``labels`` are not read)."""
        return self.unlabelled_terms(model, x, seed=seed)

    def log_likelihood(self, model, x, num_samples, chunk, seed, labels=None):
        """log p(x) = log sum_y p(y) p(x|y), y enumerated and each p(x|y) by importance sampling
        with q(z|x,y) (k = ``num_samples`` each): a lower bound in expectation, tight as k
        grows. With ``labels``: log p(x|y) of those labels."""
        if labels is not None:
            return super().log_likelihood(model, x, num_samples, chunk, seed, labels)
        x = tf.convert_to_tensor(x, tf.float32)
        n = tf.shape(x)[0]
        per_class = [importance.log_likelihood(
            model, x, num_samples, chunk, None if seed is None else (seed[0], seed[1] + 7919 * c),
            tf.fill([n], c)) for c in range(self.num_classes)]
        return tf.reduce_logsumexp(tf.stack(per_class, -1), -1) + self.log_prior_of_labels()


@LABELS.register("component")
class ComponentLabel(NoLabel):
    """A mixture prior (``mog`` or ``vamp``, one component per class) whose components are tied
    to the classes by the labels that exist: p(z | y = c) is component c, and an unlabelled
    image's prior is the whole mixture, p(z) = sum_c pi_c p(z | y = c) (y summed out exactly).
    Each step takes a batch of all training images (the mixture prior) and a batch of the
    labelled ones (their components), weighted equally, so that each component comes to
    generate its class. ``classify`` reads the class off the components' responsibilities at
    the posterior mean, p(c | z = E_q[z])."""

    name = "component"
    labelled_stream = steps_read_labels = can_classify = components_are_classes = True
    metric_names = ("elbo_labelled", "classification_error")

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)

    @classmethod
    def check(cls, config, num_classes=0):
        m = config.model
        what = f"model.label={cls.name!r}"
        if m.prior.name not in ("mog", "vamp"):
            raise ConfigError(f"{what} ties a mixture's components to classes; model.prior."
                              f"name={m.prior.name!r} is not one: use 'mog' or 'vamp'")
        if num_classes < 2 or m.prior.components != num_classes:
            raise ConfigError(f"{what} needs one component per class: set "
                              f"model.prior.components={max(num_classes, 2)} (the data has "
                              f"{num_classes} classes; it is {m.prior.components})")
        _check_labels(what, config, num_classes, layers_ok=False)
        if str(config.data.labels) == "none":
            raise ConfigError(f"{what} with data.labels='none': it needs some labelled "
                              "images; use data.labels=N (per class) or 'all'")

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        return cls(num_classes)

    def node(self):
        return nodes.Node("y", "categorical", (), "enumerated",
                          "the prior's component; observed where labelled")

    def prepare(self, labels):
        """Labels ``[B]``, -1 for unlabelled: each image's prior is then its component."""
        return tf.cast(labels, tf.int32)

    def top_log_prior_fn(self, model, labels=None):
        logits, loc, scale = model.prior.mixture_parameters()
        mixture = lambda z: priors.diagonal_gaussian_mixture_log_prob(  # noqa: E731
            z, logits, loc, scale)
        if labels is None:
            return mixture
        labels = self.prepare(labels)
        known, c = labels >= 0, tf.maximum(labels, 0)
        component = tfd.Independent(tfd.Normal(
            tf.gather(loc, c), tf.gather(tf.broadcast_to(scale, tf.shape(loc)), c)), 1)
        return lambda z: tf.where(known, component.log_prob(z), mixture(z))

    def classify(self, model, x, training=None):
        """Logits of p(c | z) at z = the posterior mean, ``[B, K]``."""
        z = model.code(model.encode(x, training=training))
        logits, loc, scale = model.prior.mixture_parameters()
        per = tfd.Independent(tfd.Normal(loc, tf.broadcast_to(scale, tf.shape(loc))), 1)
        return tf.nn.log_softmax(logits) + per.log_prob(z[:, None, :])

    def training_terms(self, model, data, beta):
        unlabelled, (x_l, y_l) = data
        x_u, _ = _unpack(unlabelled)
        u = model.estimator.terms(model, x_u, beta=beta, training=True)
        lab = model.estimator.terms(model.given(y_l), x_l, beta=beta, training=True)
        return u._replace(loss=u.loss + lab.loss,
                          extras={**u.extras, "elbo_labelled": tf.reduce_mean(lab.elbo)})

    def test_terms(self, model, data):
        x, labels = _unpack(data)
        terms = model.elbo_terms(x)
        return terms._replace(extras={"classification_error": _error(
            self.classify(model, x), labels)})


def check(config, num_classes: int = 0):
    """The role of ``config.model.label``, its config checked: the class."""
    role = LABELS.get(config.model.label)
    role.check(config, num_classes)
    return role
