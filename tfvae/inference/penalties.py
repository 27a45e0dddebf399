"""Objectives that add a penalty to the ELBO so that structure appears without annotation, each
an estimator chosen by name (``estimator.name``), path-wise in z, for one diagonal-Gaussian
latent layer. Per example, with D the distortion and R = KL(q(z|x) || p(z)):

| name | loss (mean over the batch) |
| --- | --- |
| ``annealed_vae`` | D + gamma \\|R - C_t\\|, C_t = min(C_max, C_max t / T) (Burgess et al. 2018) [1] |
| ``beta_tcvae`` | D + alpha I_q(x; z) + beta TC(z) + gamma sum_j KL(q(z_j) \\|\\| p(z_j)) (Chen et al. 2018) [2] |
| ``factor_vae`` | D + R + gamma TC(z), TC by a discriminator's density ratio (Kim and Mnih 2018) [3] |
| ``dip_vae_i`` | D + R + l_od sum_{i != j} C_ij^2 + l_d sum_i (C_ii - 1)^2, C = Cov_x[E_q z] [4] |
| ``dip_vae_ii`` | the same with C = Cov_q(z)[z] = E_x[Cov_q(z\\|x) z] + Cov_x[E_q z] [4] |
| ``info_vae`` | D + (1 - alpha) R + (alpha + lambda - 1) MMD(q(z), p(z)) (Zhao et al. 2019) [5] |

(beta-VAE, Higgins et al. 2017, is the ELBO with ``train.beta`` > 1: ``reparameterized``.)
q(z) = 1/N sum_n q(z|x_n) is the aggregate posterior; TC(z) = KL(q(z) || prod_j q(z_j)) its
total correlation. beta-TCVAE estimates log q(z) and log q(z_j) on the batch by minibatch-weighted
(``mws``) or minibatch-stratified (``mss``) sampling over the N training images, as Chen et
al.'s code does; FactorVAE trains a discriminator between samples of q(z) and of prod_j q(z_j)
(each dimension permuted across the batch) in the ``baseline`` parameter group, with its own
optimiser where ``train.groups.baseline`` names one, and reads TC as E[logit D(z) - logit
(1 - D(z))]. Every objective reports the plain ELBO and its penalty's terms.

``estimator.weight``: the penalty's weight (gamma, beta, l_od, lambda), 0 for the paper's
default (`DEFAULT_WEIGHTS`).

References:
  [1] Burgess, Higgins, Pal, Matthey, Watters, Desjardins and Lerchner (2018). Understanding
      disentangling in beta-VAE. arXiv:1804.03599.
  [2] Chen, Li, Grosse and Duvenaud (2018). Isolating Sources of Disentanglement in VAEs. NeurIPS.
  [3] Kim and Mnih (2018). Disentangling by Factorising. ICML.
  [4] Kumar, Sattigeri and Balakrishnan (2018). Variational Inference of Disentangled Latent
      Concepts from Unlabeled Observations. ICLR.
  [5] Zhao, Song and Ermon (2019). InfoVAE: Balancing Learning and Inference in Variational
      Autoencoders. AAAI.
"""
import math

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.distributions import posteriors
from tfvae.errors import ConfigError
from tfvae.inference.estimators import ESTIMATORS, Estimator, Terms, rate_terms

tfd = tfp.distributions

NAMES = ("annealed_vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "info_vae")
# The papers' weights: Burgess et al.'s gamma on dSprites, Chen et al.'s beta, Kim and Mnih's
# gamma on dSprites, Kumar et al.'s lambda_od, Zhao et al.'s lambda.
DEFAULT_WEIGHTS = {"annealed_vae": 1000.0, "beta_tcvae": 6.0, "factor_vae": 35.0,
                   "dip_vae_i": 10.0, "dip_vae_ii": 10.0, "info_vae": 1000.0}
TC_SAMPLING = ("mss", "mws")


def pairwise_log_density(z, loc, scale):
    """``log q(z_i,j | x_n)`` for every sample i and image n, per dimension j: ``[B, N, L]``
    from ``z [B, L]`` and the posteriors' ``loc, scale [N, L]``."""
    return tfd.Normal(loc[None], scale[None]).log_prob(z[:, None, :])


def log_importance_weights(batch_size: int, dataset_size: int) -> tf.Tensor:
    """Chen et al.'s minibatch-stratified weights ``log W [B, B]``: each row sums to 1 (its
    image 1/N, one other (N - M)/(N M), the rest 1/M, M = B - 1)."""
    n, m = float(dataset_size), float(batch_size - 1)
    w = tf.fill([batch_size, batch_size], 1.0 / m)
    w = tf.linalg.set_diag(w, tf.fill([batch_size], 1.0 / n))
    strat = (n - m) / (n * m)
    rows = tf.range(batch_size)
    w = tf.tensor_scatter_nd_update(w, tf.stack([rows, (rows + 1) % batch_size], 1),
                                    tf.fill([batch_size], strat))
    return tf.math.log(w)


def aggregate_log_densities(z, loc, scale, dataset_size: int, sampling: str = "mss"):
    """``(log q(z_i), sum_j log q(z_ij))`` per sample ``[B]``, q(z) the aggregate posterior of
    N = ``dataset_size`` images estimated on the batch (``mss`` or ``mws``, Chen et al.)."""
    pairs = pairwise_log_density(z, loc, scale)                       # [B, B, L]
    if sampling == "mws":
        offset = math.log(float(dataset_size) * int(z.shape[0]))
        log_qz = tf.reduce_logsumexp(tf.reduce_sum(pairs, -1), 1) - offset
        log_marginals = tf.reduce_sum(tf.reduce_logsumexp(pairs, 1) - offset, -1)
    else:
        log_w = log_importance_weights(int(z.shape[0]), dataset_size)
        log_qz = tf.reduce_logsumexp(log_w + tf.reduce_sum(pairs, -1), 1)
        log_marginals = tf.reduce_sum(tf.reduce_logsumexp(log_w[..., None] + pairs, 1), -1)
    return log_qz, log_marginals


def covariance(x):
    """The covariance over the batch of ``x [B, L]``: ``[L, L]``."""
    centred = x - tf.reduce_mean(x, 0, keepdims=True)
    return tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(x)[0], x.dtype)


def dip_penalty(cov, off_diagonal: float, diagonal: float):
    """l_od sum_{i != j} C_ij^2 + l_d sum_i (C_ii - 1)^2."""
    diag = tf.linalg.diag_part(cov)
    off = cov - tf.linalg.diag(diag)
    return off_diagonal * tf.reduce_sum(off ** 2) + diagonal * tf.reduce_sum((diag - 1.0) ** 2)


def mmd(x, y):
    """The unbiased estimate (U-statistic) of MMD^2 between samples ``x [N, L]`` and
    ``y [M, L]``, with InfoVAE's kernel k(a, b) = exp(-||a - b||^2 / L^2)."""
    dim = tf.cast(tf.shape(x)[-1], x.dtype)

    def kernel(a, b):
        sq = tf.reduce_sum((a[:, None, :] - b[None, :, :]) ** 2, -1)
        return tf.exp(-sq / dim ** 2)

    def within(a):
        k, n = kernel(a, a), tf.cast(tf.shape(a)[0], a.dtype)
        return (tf.reduce_sum(k) - tf.linalg.trace(k)) / (n * (n - 1))
    return within(x) + within(y) - 2.0 * tf.reduce_mean(kernel(x, y))


def permute_dimensions(z):
    """Each column of ``z [B, L]`` shuffled across the batch on its own: a sample of
    prod_j q(z_j) from one of q(z) (Kim and Mnih's Algorithm 2)."""
    order = tf.argsort(tf.random.uniform(tf.shape(z)), axis=0)     # [B, L]
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))


class Penalised(Estimator):
    """The shared path: z ~ q(z|x) reparameterised (S = ``model.num_samples``), D and R as the
    ELBO's; `objective` gives the loss and the extras from them."""

    def __init__(self, weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight) or DEFAULT_WEIGHTS[self.key]

    key = ""

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        return cls(weight=block.get("weight", 0.0), name="estimator")

    def check(self, model) -> None:
        gaussian = (len(model.latent_dims) == 1 and model.posterior_name == "gaussian"
                    and not getattr(model.latents, "codes", None))
        if not gaussian:
            raise ConfigError(
                f"estimator {self.key!r} penalises one diagonal-Gaussian latent layer; set "
                f"model.posterior.name='gaussian' and one model.latent_dims (it has "
                f"{model.posterior_name!r}, {tuple(model.latent_dims)})")

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        z = q.sample(model.num_samples)                                   # [S, B, L]
        distortion = -tf.reduce_mean(model.likelihood(z, training=training).log_prob(x), 0)
        rate, rates = rate_terms(model, q, z)
        loss, extras, groups = self.objective(model, q, z, distortion, rate, beta, training)
        return Terms(loss=loss, elbo=-(distortion + rate), distortion=distortion, rate=rate,
                     rates=rates, extras=extras, group_losses=groups)

    def objective(self, model, q, z, distortion, rate, beta, training):
        """``(loss, extras, group losses)``."""
        raise NotImplementedError


@ESTIMATORS.register("annealed_vae")
class AnnealedVAE(Penalised):
    """D + gamma |R - C_t|: the rate is pulled to a capacity C_t that grows linearly from 0 to
    ``estimator.capacity_max`` nats over ``estimator.capacity_steps`` steps [1]."""

    key = "annealed_vae"
    metric_names = ("capacity",)

    def __init__(self, capacity_max=25.0, capacity_steps=100000, **kwargs):
        super().__init__(**kwargs)
        if capacity_max < 0 or capacity_steps < 1:
            raise ConfigError(f"estimator.capacity_max={capacity_max} must be >= 0 and "
                              f"estimator.capacity_steps={capacity_steps} >= 1")
        self.capacity_max, self.capacity_steps = float(capacity_max), int(capacity_steps)

    @classmethod
    def from_config(cls, block, **context):
        return cls(capacity_max=block.capacity_max, capacity_steps=block.capacity_steps,
                   weight=block.weight, name="estimator")

    def objective(self, model, q, z, distortion, rate, beta, training):
        t = tf.cast(model.step, tf.float32)
        capacity = tf.minimum(self.capacity_max, self.capacity_max * t / self.capacity_steps)
        loss = tf.reduce_mean(distortion) + self.weight * tf.abs(tf.reduce_mean(rate) - capacity)
        return loss, {"capacity": capacity}, {}


@ESTIMATORS.register("beta_tcvae")
class BetaTCVAE(Penalised):
    """D + alpha MI + beta TC + gamma dimension-wise KL [2], with alpha = gamma = 1 and beta =
    ``estimator.weight``; log q(z) by ``estimator.tc_sampling`` ('mss' or 'mws') over the N
    training images. With every weight 1 the loss is the ELBO's Monte Carlo estimate."""

    key = "beta_tcvae"
    metric_names = ("mutual_information", "total_correlation", "dimension_kl")

    def __init__(self, dataset_size=0, sampling="mss", mi_weight=1.0, dim_kl_weight=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        if sampling not in TC_SAMPLING:
            raise ConfigError(f"estimator.tc_sampling={sampling!r}; use 'mss' or 'mws'")
        self.dataset_size, self.sampling = int(dataset_size), sampling
        self.mi_weight, self.dim_kl_weight = float(mi_weight), float(dim_kl_weight)

    @classmethod
    def from_config(cls, block, num_train=0, **context):
        return cls(dataset_size=num_train or 60000, sampling=block.tc_sampling,
                   weight=block.weight, name="estimator")

    def decomposition(self, model, q, z):
        """``(MI, TC, dimension-wise KL)`` per sample ``[B]`` at one z ~ q(z|x) per image."""
        loc, scale = posteriors.code_statistics(q)
        z0 = z[0]
        log_qz_x = tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z0), -1)
        log_qz, log_marginals = aggregate_log_densities(
            z0, loc, scale, max(self.dataset_size, int(z0.shape[0])), self.sampling)
        log_pz = model.log_prior(z0)
        return log_qz_x - log_qz, log_qz - log_marginals, log_marginals - log_pz

    def objective(self, model, q, z, distortion, rate, beta, training):
        mi, tc, dim_kl = self.decomposition(model, q, z)
        loss = tf.reduce_mean(distortion + self.mi_weight * mi + self.weight * tc
                              + self.dim_kl_weight * dim_kl)
        return loss, {"mutual_information": tf.reduce_mean(mi),
                      "total_correlation": tf.reduce_mean(tc),
                      "dimension_kl": tf.reduce_mean(dim_kl)}, {}


@ESTIMATORS.register("factor_vae")
class FactorVAE(Penalised):
    """D + R + gamma TC [3]: TC from a discriminator between z ~ q(z) and its dimensions
    permuted (an MLP, ``estimator.discriminator_hidden``, LeakyReLU 0.2, two logits), trained by
    cross-entropy in the ``baseline`` group."""

    key = "factor_vae"
    metric_names = ("total_correlation", "discriminator_loss")

    def __init__(self, hidden=(1000,) * 6, **kwargs):
        super().__init__(**kwargs)
        self.hidden = tuple(int(h) for h in hidden)

    @classmethod
    def from_config(cls, block, **context):
        return cls(hidden=tuple(block.discriminator_hidden), weight=block.weight,
                   name="estimator")

    def prepare(self, model) -> None:
        layers = [keras.layers.Dense(h, activation=tf.nn.leaky_relu) for h in self.hidden]
        self.discriminator = keras.Sequential(layers + [keras.layers.Dense(2)],
                                              name="discriminator")
        self.discriminator.build((None, model.latent_dim))

    def total_correlation(self, z):
        """E[log D(z) / (1 - D(z))] at samples ``z [B, L]`` of q(z)."""
        logits = self.discriminator(z)
        return tf.reduce_mean(logits[:, 0] - logits[:, 1])

    def discriminator_loss(self, z):
        """Cross-entropy of the discriminator: ``z`` (class 0) against it permuted (class 1)."""
        z = tf.stop_gradient(z)
        logits = self.discriminator(tf.concat([z, permute_dimensions(z)], 0))
        n = tf.shape(z)[0]
        labels = tf.concat([tf.zeros([n], tf.int32), tf.ones([n], tf.int32)], 0)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    def objective(self, model, q, z, distortion, rate, beta, training):
        tc = self.total_correlation(z[0])
        d_loss = self.discriminator_loss(z[0])
        loss = tf.reduce_mean(distortion + beta * rate) + self.weight * tc
        return loss, {"total_correlation": tc, "discriminator_loss": d_loss}, \
            {"baseline": d_loss}


@ESTIMATORS.register("dip_vae_i")
class DipVAEI(Penalised):
    """D + R + the DIP penalty on Cov_x[E_q z] [4] (l_od = ``estimator.weight``, l_d =
    ``estimator.weight_diagonal`` or 10 l_od)."""

    key = "dip_vae_i"
    metric_names = ("dip_penalty",)
    diagonal_factor = 10.0

    def __init__(self, weight_diagonal=0.0, **kwargs):
        super().__init__(**kwargs)
        self.weight_diagonal = float(weight_diagonal) or self.diagonal_factor * self.weight

    @classmethod
    def from_config(cls, block, **context):
        return cls(weight=block.weight, weight_diagonal=block.weight_diagonal, name="estimator")

    def covariance(self, q):
        return covariance(posteriors.code_statistics(q)[0])

    def objective(self, model, q, z, distortion, rate, beta, training):
        penalty = dip_penalty(self.covariance(q), self.weight, self.weight_diagonal)
        return tf.reduce_mean(distortion + beta * rate) + penalty, {"dip_penalty": penalty}, {}


@ESTIMATORS.register("dip_vae_ii")
class DipVAEII(DipVAEI):
    """D + R + the DIP penalty on Cov_q(z)[z] = E_x[diag sigma^2(x)] + Cov_x[mu(x)] [4]
    (l_d = l_od unless ``estimator.weight_diagonal`` says)."""

    key = "dip_vae_ii"
    diagonal_factor = 1.0

    def covariance(self, q):
        loc, scale = posteriors.code_statistics(q)
        return covariance(loc) + tf.linalg.diag(tf.reduce_mean(scale ** 2, 0))


@ESTIMATORS.register("info_vae")
class InfoVAE(Penalised):
    """D + (1 - alpha) R + (alpha + lambda - 1) MMD(q(z), p(z)) [5], alpha =
    ``estimator.info_alpha``, lambda = ``estimator.weight``; MMD between the batch's z and as
    many draws of the prior."""

    key = "info_vae"
    metric_names = ("mmd",)

    def __init__(self, alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    @classmethod
    def from_config(cls, block, **context):
        return cls(alpha=block.info_alpha, weight=block.weight, name="estimator")

    def objective(self, model, q, z, distortion, rate, beta, training):
        z0 = z[0]
        prior_z = tf.stop_gradient(model.prior.sample(tf.shape(z0)[0]))
        value = mmd(z0, tf.reshape(prior_z, tf.shape(z0)))
        loss = (tf.reduce_mean(distortion + (1.0 - self.alpha) * beta * rate)
                + (self.alpha + self.weight - 1.0) * value)
        return loss, {"mmd": value}, {}
