"""Observation models p(x|z) as `tfp.layers.DistributionLambda` heads over decoder logits.

Each head maps logits ``[..., H, W, C]`` to a distribution whose event shape is the image shape
``[H, W, C]``, so ``log_prob(x)`` sums over pixels and broadcasts over leading sample axes.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.registry import Registry

tfd, tfpl = tfp.distributions, tfp.layers

LIKELIHOODS = Registry("likelihood", field="model.likelihood")


class LikelihoodHead(tfpl.DistributionLambda):
    """Base: ``pixel_distribution(logits)`` made independent over the 3 image axes.

    ``convert_to_tensor_fn`` is the mean (a pure op, pruned when unused; a sample would be drawn
    every call). ``binary_data`` says whether observations must be in {0, 1}.
    """

    binary_data = False

    def __init__(self, **kwargs):
        super().__init__(
            lambda logits: tfd.Independent(self.pixel_distribution(logits),
                                           reinterpreted_batch_ndims=3),
            convert_to_tensor_fn=tfd.Distribution.mean, **kwargs)

    def pixel_distribution(self, logits):
        raise NotImplementedError


class _Bernoulli(tfd.Bernoulli):
    """TFP's Bernoulli with log p(x) = x l - softplus(l): one softplus per pixel where TFP
    evaluates two (softplus(l) and softplus(-l)); the same value for finite logits, and the
    softplus dominates the importance-sampled evaluation's non-matmul time."""

    def _log_prob(self, event):
        logits = self._logits_parameter_no_checks()
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


def build(name: str) -> LikelihoodHead:
    return LIKELIHOODS.build(name, name="likelihood")
