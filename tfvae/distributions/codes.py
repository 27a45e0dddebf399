"""Discrete latent codes: factorised Bernoulli bit vectors and categorical codes (G groups of K
classes, one-hot), as posterior heads, learned-logit priors and the operations the discrete
gradient estimators need (`tfvae.inference.discrete`).

A code of width ``d`` is a float tensor ``[..., d]``: bits in {0, 1}, or G = d / K one-hot groups
laid out group-major (``[..., G, K]`` flattened). Every distribution here has event shape ``[d]``
so that a code enters the decoder, the importance sampler and the export as a Gaussian z does.

| name | q(b|x), p(b) | relaxation (temperature tau) |
| --- | --- | --- |
| ``bernoulli`` | prod_i Bern(b_i; sigmoid(l_i)) | binary Concrete: sigmoid((l + logit u) / tau) |
| ``categorical`` | prod_g Cat(b_g; softmax(l_g)) | Gumbel-softmax: softmax((log theta + g) / tau) |

References:
  [1] Jang, Gu and Poole (2017). Categorical Reparameterization with Gumbel-Softmax. ICLR.
  [2] Maddison, Mnih and Teh (2017). The Concrete Distribution. ICLR.
"""
import itertools
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

from tfvae.distributions import posteriors, priors
from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd, tfb = tfp.distributions, tfp.bijectors

FAMILIES = Registry("discrete code family", field="model.posterior.name")
MAX_SUPPORT = 2 ** 16  # codes with more values than this are never enumerated


def _uniform_like(shape, dtype, seed):
    """U(0, 1) by the stateful generator (seed None) or the stateless one: TFP's samplers draw
    through int64 stateless ops, which XLA compiles to a path 10x slower on CPU (8.7 ms for
    20,000 bits against 0.9 ms), where the train step is XLA-compiled."""
    if seed is None:
        return tf.random.uniform(shape, dtype=dtype)
    return tf.random.stateless_uniform(shape, samplers.sanitize_seed(seed), dtype=dtype)


class Bits(tfd.Bernoulli):
    """TFP's Bernoulli, sampled as 1[u < sigmoid(l)] (`_uniform_like`), its log_prob
    differentiable in the value (for relaxed codes)."""

    def _sample_n(self, n, seed=None):
        logits = self.logits_parameter()
        u = _uniform_like(tf.concat([[n], tf.shape(logits)], 0), logits.dtype, seed)
        return tf.cast(u < tf.sigmoid(logits), self.dtype)

    def _log_prob(self, b):  # differentiable in b too: relaxed codes are scored by it
        logits = self.logits_parameter()
        b, logits = b + tf.zeros_like(logits), logits + tf.zeros_like(b)
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=logits)


class OneHot(tfd.OneHotCategorical):
    """TFP's OneHotCategorical, sampled by the Gumbel-max trick (`_uniform_like`), its
    log_prob sum_k b_k log softmax(l)_k differentiable in b (for relaxed codes)."""

    def _sample_n(self, n, seed=None):
        logits = self.logits_parameter()
        u = _uniform_like(tf.concat([[n], tf.shape(logits)], 0), logits.dtype, seed)
        u = tf.clip_by_value(u, 1e-7, 1.0 - 1e-7)
        index = tf.argmax(logits - tf.math.log(-tf.math.log(u)), -1)
        return tf.one_hot(index, tf.shape(logits)[-1], dtype=self.dtype)

    def _log_prob(self, b):  # TFP's stops the gradient in b; relaxed codes need it
        logits = self.logits_parameter()
        return tf.reduce_sum(b * tf.nn.log_softmax(logits), -1)


class Bernoulli:
    """Bits: ``d`` independent Bernoulli variables with logits ``[..., d]``."""

    name = "bernoulli"
    classes = 2

    def __init__(self, width: int, classes: int = 2):
        self.width = int(width)

    def distribution(self, logits) -> tfd.Distribution:
        return tfd.Independent(Bits(logits=logits, dtype=logits.dtype), 1)

    def relaxed_sample(self, logits, temperature, n=()):
        """A binary Concrete sample (values in (0, 1), reparameterised): sigmoid((l + logit u)
        / tau), ``n`` draws ahead of the logits' shape."""
        u = uniform(tf.concat([tf.reshape(tf.cast(n, tf.int32), [-1]), tf.shape(logits)], 0),
                    logits.dtype)
        return self.soft(logits + _logit(u), temperature)

    def hard(self, soft):
        """The discrete value of a relaxed sample (a sample of the discrete code)."""
        return tf.cast(soft > 0.5, soft.dtype)

    def log_mass(self, logits, b):
        """sum_i [b_i log sigmoid(l_i) + (1 - b_i) log sigmoid(-l_i)], also for relaxed b."""
        return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=logits), -1)

    def score(self, logits, b):
        """d log q(b) / d logits."""
        return b - tf.sigmoid(logits)

    def soft(self, z, temperature):
        """The relaxed code of logistic-perturbed logits ``z``: sigmoid(z / tau)."""
        return tf.sigmoid(z / temperature)

    def relax_noise(self, logits, u, v):
        """REBAR's noise for uniforms ``u``, ``v`` (shape of the code): z = l + logit(u),
        b = 1[z > 0] ~ q, and z~ ~ p(z | b), both functions of the logits."""
        theta = tf.sigmoid(logits)
        z = logits + _logit(u)
        b = tf.stop_gradient(tf.cast(z > 0, z.dtype))
        v_given_b = b * (v * theta + 1.0 - theta) + (1.0 - b) * v * (1.0 - theta)
        return z, b, logits + _logit(v_given_b)

    def support_size(self) -> int:
        return 2 ** self.width if self.width < 63 else MAX_SUPPORT + 1

    def support(self) -> np.ndarray:
        """Every code ``[2^d, d]`` (float32), in binary counting order."""
        n = self.support_size()
        return ((np.arange(n)[:, None] >> np.arange(self.width)[::-1]) & 1).astype(np.float32)


class Categorical:
    """G one-hot groups of K classes, logits ``[..., G * K]`` group-major."""

    name = "categorical"

    def __init__(self, width: int, classes: int):
        if classes < 2 or width % classes:
            raise ConfigError(
                f"model.latent_dims gives a categorical code of width {width}, not a multiple of "
                f"model.posterior.classes={classes} (>= 2); e.g. latent_dims=(200,) and "
                "classes=10 for 20 groups of 10")
        self.width, self.classes = int(width), int(classes)
        self.groups = self.width // self.classes

    def _grouped(self, flat):
        return tf.reshape(flat, tf.concat([tf.shape(flat)[:-1], [self.groups, self.classes]], 0))

    def _flat(self, grouped):
        return tf.reshape(grouped, tf.concat([tf.shape(grouped)[:-2], [self.width]], 0))

    def _reshape(self):
        return tfb.Reshape([self.width], [self.groups, self.classes])

    def distribution(self, logits) -> tfd.Distribution:
        inner = OneHot(logits=self._grouped(logits), dtype=logits.dtype)
        return tfd.TransformedDistribution(tfd.Independent(inner, 1), self._reshape())

    def relaxed_sample(self, logits, temperature, n=()):
        """A Gumbel-softmax sample: softmax((log softmax(l) + Gumbel) / tau) per group."""
        u = uniform(tf.concat([tf.reshape(tf.cast(n, tf.int32), [-1]), tf.shape(logits)], 0),
                    logits.dtype)
        log_theta = self._flat(tf.nn.log_softmax(self._grouped(logits)))
        return self.soft(log_theta - tf.math.log(-tf.math.log(u)), temperature)

    def hard(self, soft):
        grouped = self._grouped(soft)
        return self._flat(tf.one_hot(tf.argmax(grouped, -1), self.classes, dtype=soft.dtype))

    def log_mass(self, logits, b):
        """sum_g sum_k b_gk log softmax(l_g)_k, also for relaxed b."""
        return tf.reduce_sum(b * self._flat(tf.nn.log_softmax(self._grouped(logits))), -1)

    def score(self, logits, b):
        return b - self._flat(tf.nn.softmax(self._grouped(logits)))

    def soft(self, z, temperature):
        """softmax(z / tau) per group."""
        return self._flat(tf.nn.softmax(self._grouped(z) / temperature))

    def relax_noise(self, logits, u, v):
        """z = log theta + Gumbel(u), b = one-hot argmax z ~ q, and z~ ~ p(z | b) (Tucker et al.
        2017, appendix: the argmax coordinate -log(-log v_b), the others
        -log(-log v_i / theta_i - log v_b))."""
        log_theta = tf.nn.log_softmax(self._grouped(logits))
        u, v = self._grouped(u), self._grouped(v)
        z = log_theta - tf.math.log(-tf.math.log(u))
        b = tf.stop_gradient(tf.one_hot(tf.argmax(z, -1), self.classes, dtype=z.dtype))
        log_v = tf.math.log(v)
        log_vb = tf.reduce_sum(b * log_v, -1, keepdims=True)
        others = -tf.math.log(-log_v * tf.exp(-log_theta) - log_vb)
        z_tilde = b * -tf.math.log(-log_vb) + (1.0 - b) * others
        return self._flat(z), self._flat(b), self._flat(z_tilde)

    def support_size(self) -> int:
        size = self.groups * math.log2(self.classes)
        return self.classes ** self.groups if size < 62 else MAX_SUPPORT + 1

    def support(self) -> np.ndarray:
        """Every code ``[K^G, G * K]`` (float32)."""
        eye = np.eye(self.classes, dtype=np.float32)
        return np.stack([np.concatenate([eye[k] for k in ks])
                         for ks in itertools.product(range(self.classes), repeat=self.groups)])


def _logit(p, eps=1e-6):
    p = tf.clip_by_value(p, eps, 1.0 - eps)
    return tf.math.log(p) - tf.math.log1p(-p)


def uniform(shape, dtype=tf.float32, eps=1e-6):
    """U(eps, 1 - eps) noise (its logs stay finite)."""
    return tf.random.uniform(shape, eps, 1.0 - eps, dtype=dtype)


FAMILIES.register("bernoulli")(Bernoulli)
FAMILIES.register("categorical")(Categorical)


def family(name: str, width: int, classes: int = 2):
    """The code family ``name`` for a code of ``width`` (``classes`` per group, categorical)."""
    return FAMILIES.get(name)(width, classes)


def is_discrete(name: str) -> bool:
    return name in FAMILIES


def logits_of(q):
    """The logits ``[..., d]`` of a code distribution made here."""
    q = getattr(q, "tensor_distribution", q)
    inner = q.distribution if isinstance(q, tfd.TransformedDistribution) else q
    logits = inner.distribution.logits
    if isinstance(q, tfd.TransformedDistribution):
        logits = tf.reshape(logits, tf.concat([tf.shape(logits)[:-2], [-1]], 0))
    return logits


# ---------------------------------------------------------------------- heads and priors
class CodeHead(posteriors.PosteriorHead):
    """q(b|x) of a discrete code from encoder logits ``[..., d]``."""

    def __init__(self, latent_dim: int, family_name: str = "bernoulli", classes: int = 2,
                 **kwargs):
        self.code = family(family_name, latent_dim, classes)
        self.latent_dim, self.params_size = int(latent_dim), int(latent_dim)
        super().__init__(self.code.distribution, **kwargs)

    @classmethod
    def from_config(cls, block, *, latent_dim: int) -> "CodeHead":
        return cls(latent_dim, block.name, block.get("classes", 2), name="posterior")


posteriors.POSTERIORS.register("bernoulli")(CodeHead)
posteriors.POSTERIORS.register("categorical")(CodeHead)


class CodePrior(priors.Prior):
    """p(b) of a discrete code with learned logits (zero at the start: uniform), as the
    sigmoid belief network's top layer (Neal 1992; Mnih and Gregor 2014)."""

    def __init__(self, latent_dim, family_name="bernoulli", classes=2, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.code = family(family_name, latent_dim, classes)
        self.logits = self.add_weight("logits", [latent_dim], initializer="zeros")

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.name, context.code_classes, name="prior")

    def distribution(self):
        return self.code.distribution(tf.convert_to_tensor(self.logits))


priors.PRIORS.register("bernoulli")(CodePrior)
priors.PRIORS.register("categorical")(CodePrior)


def check(config) -> None:
    """A discrete code's config: the posterior and the prior of one family, the width a
    multiple of ``model.posterior.classes`` (which both read)."""
    m = config.model
    post, prior = m.posterior.name, m.prior.name
    if not (is_discrete(post) or is_discrete(prior)):
        return
    if post != prior:
        raise ConfigError(
            f"model.posterior.name={post!r} and model.prior.name={prior!r}: a discrete code needs "
            f"its prior of the same family; set both to {(post if is_discrete(post) else prior)!r}")
    for dim in m.latent_dims:
        family(post, int(dim), m.posterior.classes)

