"""Exact sums over a small discrete code's support (every value of b, `tfvae.models.belief`):
the exact ELBO and its gradient (the ``enumerate`` estimator), the exact marginal
log p(x) = log sum_b p(x, b) and the exact posterior p(b | x), as the course notebook's
``log_marginal`` and ``posterior`` do for its discrete Z.

Shapes: the support is ``[N, d]`` (or a tuple of ``[N, d_l]``); it enters the model as
``[N, 1, d]``, so every log-probability is ``[N, B]`` for a batch of B images.
"""
import tensorflow as tf

from tfvae.errors import ConfigError
from tfvae.inference.discrete import needs_discrete
from tfvae.inference.estimators import ESTIMATORS, Estimator, Terms

ENUMERATE_MAX = 4096   # codes the training estimator sums over per image
EXACT_MAX = 65536      # codes evaluation sums over (in chunks) for the exact log p(x)


def support_size(model) -> int:
    """How many values the model's code takes (0: continuous, or too many to count)."""
    latents = getattr(model, "latents", None)
    return latents.support_size() if hasattr(latents, "support_size") else 0


def _expand(z):
    return tf.nest.map_structure(lambda s: s[:, None, :], z)


def _slice(z, start, stop):
    return tf.nest.map_structure(lambda s: s[start:stop], z)


def _log_joint_and_q(model, x, q, z, training=False):
    """log p(x|b), log p(b), log q(b|x) for support rows ``z``, broadcast to ``[N, B]``."""
    z = _expand(z)
    log_px = model.likelihood(z, training=training).log_prob(x)
    zeros = tf.zeros_like(log_px)
    return log_px, model.log_prior(z) + zeros, q.log_prob(z) + zeros


def exact_terms(model, x, beta=1.0, training=False):
    """``(elbo, distortion, rate, rates)`` per image ``[B]`` summed over the support, exact and
    differentiable: ELBO = sum_b q(b|x) [log p(x|b) + log p(b) - log q(b|x)]; and the loss
    mean(D + beta R) whose gradient is the exact gradient."""
    q = model.encode(x, training=training)
    support = model.latents.support()
    log_px, log_pz, log_qz = _log_joint_and_q(model, x, q, support, training)
    weight = tf.exp(log_qz)
    distortion = -tf.reduce_sum(weight * log_px, 0)
    rate = tf.reduce_sum(weight * (log_qz - log_pz), 0)
    rates = (rate,)
    if isinstance(support, tuple):  # each layer's share, bottom first
        z = _expand(support)
        qs = q.conditionals(z)
        ps = model.conditional_priors(z) + [model.prior.distribution()]
        rates = tuple(tf.reduce_sum(weight * (q_l.log_prob(b) - p_l.log_prob(b)), 0)
                      for q_l, p_l, b in zip(qs, ps, z))
    return (-(distortion + rate), distortion, rate, rates,
            tf.reduce_mean(distortion + beta * rate))


def log_marginal(model, x, chunk: int = 256):
    """The exact log p(x) = logsumexp_b [log p(x|b) + log p(b)] per image ``[B]`` (chunks of
    ``chunk`` codes at a time)."""
    z = model.latents.support()
    n = int(tf.nest.flatten(z)[0].shape[0])
    parts = []
    for start in range(0, n, chunk):
        rows = _expand(_slice(z, start, start + chunk))
        log_px = model.likelihood(rows, training=False).log_prob(x)
        parts.append(tf.reduce_logsumexp(log_px + model.log_prior(rows), 0))
    return tf.reduce_logsumexp(tf.stack(parts), 0)


def posterior(model, x):
    """The exact posterior p(b | x) ``[B, N]`` over the support's rows (in their order)."""
    z = _expand(model.latents.support())
    log_joint = model.likelihood(z, training=False).log_prob(x) + model.log_prior(z)
    return tf.transpose(tf.nn.softmax(log_joint, axis=0))


@ESTIMATORS.register("enumerate")
class Enumerate(Estimator):
    """The exact ELBO and its exact gradient by summing over every code (at most
    ``ENUMERATE_MAX`` values): no sampling, no variance; one decoder pass per code."""

    gradient = ("enumerated", "exact sum over the code")

    def check(self, model) -> None:
        needs_discrete("enumerate", model)
        size = support_size(model)
        if size > ENUMERATE_MAX:
            raise ConfigError(
                f"estimator.name='enumerate' sums over every code, and this one takes "
                f"{'more than ' + str(ENUMERATE_MAX) if size > 65536 else size} values (at most "
                f"{ENUMERATE_MAX}); use a smaller model.latent_dims, or a sampling estimator "
                "such as 'disarm', 'rloo' or 'vimco'")

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        elbo, distortion, rate, rates, loss = exact_terms(model, x, beta, training)
        return Terms(loss=loss, elbo=elbo, distortion=distortion, rate=rate, rates=rates)
