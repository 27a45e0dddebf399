"""Observation models p(x|z) as `tfp.layers.DistributionLambda` heads over decoder outputs.

Each head maps decoder outputs ``[..., H, W, C * P]`` (``P = head.params_per_pixel``) to a
distribution whose event shape is the image shape ``[H, W, C]``, so ``log_prob(x)`` sums over
pixels and broadcasts over leading sample axes.

- ``bernoulli``, ``continuous_bernoulli``: binary pixels, [0, 1] intensities (P = 1);
- ``discretized_logistic``: a logistic per pixel discretised into the 256 levels k / 255 of 8-bit
  images, the edge bins taking the tails (P = 2: location, log-scale; Salimans et al. 2017);
- ``discretized_logistic_mixture``: a mixture of ``M`` of them per pixel (P = 3 M, PixelCNN++);
- ``categorical``: a 256-way softmax per pixel (P = 256);
- ``gaussian``: a normal per value, for real-valued data (``data.features``; P = 2).

The three 8-bit models need ``data.pixels='continuous'`` (pixel values k / 255); report them in
bits per dimension, -log p(x) / (D ln 2), beside nats.

References:
  [1] Loaiza-Ganem and Cunningham (2019). The continuous Bernoulli: fixing a pervasive error in
      variational autoencoders. NeurIPS.
  [2] Salimans, Karpathy, Chen and Kingma (2017). PixelCNN++: Improving the PixelCNN with
      Discretized Logistic Mixture Likelihood and Other Modifications. ICLR.
  [3] van den Oord, Kalchbrenner and Kavukcuoglu (2016). Pixel Recurrent Neural Networks. ICML.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.registry import Registry

tfd, tfpl = tfp.distributions, tfp.layers

LIKELIHOODS = Registry("likelihood", field="model.likelihood.name")


class LikelihoodHead(tfpl.DistributionLambda):
    """Base: ``pixel_distribution(logits)`` made independent over the 3 image axes.

    ``convert_to_tensor_fn`` is the mean (a pure op, pruned when unused; a sample would be drawn
    every call). ``binary_data`` says whether observations must be in {0, 1}.
    """

    binary_data = False   # observations must be in {0, 1}
    levels_data = False   # observations must be on the 256-level grid k / 255
    params_per_pixel = 1

    def __init__(self, **kwargs):
        super().__init__(self.distribution, convert_to_tensor_fn=tfd.Distribution.mean, **kwargs)

    def distribution(self, logits) -> tfd.Distribution:
        """p(x|z) from decoder outputs ``[..., H, W, C * P]``: batch shape ``[...]``, event
        shape ``[H, W, C]``. Call this, not the layer: a Keras call also converts the result
        to a tensor (its mean), which eager code would compute for nothing."""
        return tfd.Independent(self.pixel_distribution(self._split(logits)),
                               reinterpreted_batch_ndims=3)

    @classmethod
    def from_config(cls, block) -> "LikelihoodHead":
        """The head from its config block (``config.model.likelihood``)."""
        return cls(name="likelihood")

    def _split(self, outputs):
        """``[..., H, W, C * P]`` -> ``[..., H, W, C, P]`` (unchanged when P = 1)."""
        if self.params_per_pixel == 1:
            return outputs
        shape = tf.shape(outputs)
        return tf.reshape(outputs, tf.concat(
            [shape[:-1], [shape[-1] // self.params_per_pixel, self.params_per_pixel]], 0))

    def pixel_distribution(self, logits):
        raise NotImplementedError


class _Bernoulli(tfd.Bernoulli):
    """TFP's Bernoulli with log p(x) = x l - softplus(l): one softplus per pixel where TFP
    evaluates two (softplus(l) and softplus(-l)); the same value for finite logits, and the
    softplus dominates the importance-sampled evaluation's non-matmul time."""

    def _log_prob(self, event):
        logits = self.logits_parameter()
        event = tf.cast(event, logits.dtype)
        return event * logits - tf.nn.softplus(logits)


@LIKELIHOODS.register("bernoulli")
class BernoulliHead(LikelihoodHead):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i)), for binarised pixels."""

    binary_data = True

    def pixel_distribution(self, logits):
        return _Bernoulli(logits=logits, dtype=tf.float32)


@LIKELIHOODS.register("continuous_bernoulli")
class ContinuousBernoulliHead(LikelihoodHead):
    """p(x|z) = prod_i CB(x_i; lambda_i), a normalised density on [0, 1] (Loaiza-Ganem and
    Cunningham, 2019): CB(x; l) = C(l) l^x (1-l)^(1-x). Its mean is not l; use it for [0, 1]
    intensities, where a Bernoulli "likelihood" is not a density."""

    def pixel_distribution(self, logits):
        return tfd.ContinuousBernoulli(logits=logits)


@LIKELIHOODS.register("gaussian")
class GaussianHead(LikelihoodHead):
    """p(x|z) = prod_i N(x_i; mu_i, sigma_i^2) for real-valued data, such as the features of
    ``data.features`` (P = 2: the mean and sigma = softplus(raw) + 1e-3, bounded away from 0 so
    that a value the decoder matches exactly cannot send the density to infinity)."""

    params_per_pixel = 2

    def pixel_distribution(self, params):
        return tfd.Normal(params[..., 0], tf.nn.softplus(params[..., 1]) + 1e-3)


LEVELS = 256  # 8-bit pixels: values k / 255, k = 0 .. 255


class _LevelDistribution(tfd.Distribution):
    """Base of per-pixel distributions over the 256 levels k / 255: scalar events, the mean from
    ``level_probs()`` ``[..., 256]``; subclasses give ``_log_prob``, ``level_probs``, ``_sample_n``."""

    def __init__(self, dtype, parameters, name):
        super().__init__(dtype=dtype, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters,
                         name=name)

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def level_probs(self):
        raise NotImplementedError

    def _mean(self):
        grid = tf.cast(tf.range(LEVELS), self.dtype) / (LEVELS - 1)
        return tf.reduce_sum(self.level_probs() * grid, axis=-1)


class DiscretizedLogistic(_LevelDistribution):
    """Logistic(loc, exp(log_scale)) discretised into the 256 levels k / 255 of [0, 1]: level k
    has the probability of its bin [k / 255 - 1/510, k / 255 + 1/510], the edge levels 0 and 1
    the whole tails, so the 256 probabilities sum to 1 for any parameters. ``log_prob`` follows
    PixelCNN++'s stable form (log-sigmoid at the edges; the density at the bin centre times the
    bin width where the CDF difference underflows)."""

    def __init__(self, loc, log_scale, name="DiscretizedLogistic"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._loc = tf.convert_to_tensor(loc, dtype_hint=tf.float32)
            self._log_scale = tf.convert_to_tensor(log_scale, dtype=self._loc.dtype)
            super().__init__(self._loc.dtype, parameters, name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {"loc": tfp.util.ParameterProperties(),
                "log_scale": tfp.util.ParameterProperties()}

    @property
    def loc(self):
        return self._loc

    @property
    def log_scale(self):
        return self._log_scale

    def _log_prob(self, x):
        half = 0.5 / (LEVELS - 1)
        x = tf.cast(x, self.dtype)
        inv_scale = tf.exp(-self._log_scale)
        centred = x - self._loc
        plus, minus = inv_scale * (centred + half), inv_scale * (centred - half)
        log_cdf_plus = plus - tf.nn.softplus(plus)            # log sigmoid(plus): level 0
        log_survival_minus = -tf.nn.softplus(minus)           # log (1 - sigmoid(minus)): level 1
        delta = tf.sigmoid(plus) - tf.sigmoid(minus)
        mid = inv_scale * centred
        log_pdf_mid = mid - self._log_scale - 2.0 * tf.nn.softplus(mid)
        interior = tf.where(delta > 1e-5, tf.math.log(tf.maximum(delta, 1e-12)),
                            log_pdf_mid + np.log(2 * half))
        return tf.where(x < half, log_cdf_plus,
                        tf.where(x > 1.0 - half, log_survival_minus, interior))

    def level_probs(self):
        grid = tf.cast(tf.range(LEVELS), self.dtype) / (LEVELS - 1)
        per_level = DiscretizedLogistic(self._loc[..., None], self._log_scale[..., None])
        return tf.exp(per_level.log_prob(grid))

    def _sample_n(self, n, seed=None):
        shape = tf.concat([[n], self.batch_shape_tensor()], 0)
        u = tf.random.stateless_uniform(shape, seed=tfp.random.sanitize_seed(seed),
                                        minval=1e-5, maxval=1.0 - 1e-5, dtype=self.dtype)
        x = self._loc + tf.exp(self._log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
        return tf.round(tf.clip_by_value(x, 0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)


class Categorical256(_LevelDistribution):
    """A 256-way categorical over the pixel levels k / 255, from ``logits`` ``[..., 256]``."""

    def __init__(self, logits, name="Categorical256"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._logits = tf.convert_to_tensor(logits, dtype_hint=tf.float32)
            super().__init__(self._logits.dtype, parameters, name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {"logits": tfp.util.ParameterProperties(event_ndims=1)}

    @property
    def logits(self):
        return self._logits

    def _log_prob(self, x):
        k = tf.cast(tf.round(tf.cast(x, self.dtype) * (LEVELS - 1)), tf.int32)
        return tf.reduce_sum(tf.nn.log_softmax(self._logits)
                             * tf.one_hot(k, LEVELS, dtype=self.dtype), axis=-1)

    def level_probs(self):
        return tf.nn.softmax(self._logits)

    def _sample_n(self, n, seed=None):
        k = tfd.Categorical(logits=self._logits).sample(n, seed=seed)
        return tf.cast(k, self.dtype) / (LEVELS - 1)


@LIKELIHOODS.register("discretized_logistic")
class DiscretizedLogisticHead(LikelihoodHead):
    """p(x|z) = prod_i DiscretizedLogistic(x_i; mu_i, s_i) over 8-bit levels; the decoder gives
    mu (unbounded: the edge bins absorb the tails) and log s, floored at -7."""

    levels_data = True
    params_per_pixel = 2

    def pixel_distribution(self, params):
        loc, log_scale = params[..., 0], params[..., 1]
        return DiscretizedLogistic(0.5 + loc, tf.maximum(log_scale, -7.0))


@LIKELIHOODS.register("discretized_logistic_mixture")
class DiscretizedLogisticMixtureHead(LikelihoodHead):
    """A mixture of M discretised logistics per pixel (PixelCNN++, without its channel
    coupling): the decoder gives M logits, M locations and M log-scales per pixel."""

    levels_data = True

    def __init__(self, num_components: int = 5, **kwargs):
        self.num_components = int(num_components)
        self.params_per_pixel = 3 * self.num_components
        super().__init__(**kwargs)

    @classmethod
    def from_config(cls, block) -> "DiscretizedLogisticMixtureHead":
        return cls(num_components=block.components, name="likelihood")

    def pixel_distribution(self, params):
        logits, loc, log_scale = tf.split(params, 3, axis=-1)
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=logits),
            DiscretizedLogistic(0.5 + loc, tf.maximum(log_scale, -7.0)))


@LIKELIHOODS.register("categorical")
class CategoricalHead(LikelihoodHead):
    """p(x|z) = prod_i Categorical(255 x_i; softmax(l_i)), 256 logits per pixel."""

    levels_data = True
    params_per_pixel = LEVELS

    def pixel_distribution(self, params):
        return Categorical256(params)


def build(block) -> LikelihoodHead:
    """The likelihood head of ``config.model.likelihood``."""
    return LIKELIHOODS.create(block)


def bits_per_dim(nats, num_dims: int):
    """-log p(x) in nats -> bits per dimension: -log p / (D ln 2) (``nats`` is log p, < 0)."""
    return -np.asarray(nats) / (num_dims * np.log(2.0))
