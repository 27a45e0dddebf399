"""Gradient estimators for discrete latent codes (`tfvae.distributions.codes`, one layer or a
belief network, `tfvae.models.belief`), chosen by name like every estimator
(``config.estimator.name``, `estimators.ESTIMATORS`), each giving `estimators.Terms`.

Every estimator below estimates the inference gradient of the (beta-weighted) ELBO

    L(phi) = E_q(b|x) f(b),   f(b) = log p(x|b) + beta (log p(b) - log q(b|x)),

(VIMCO: of the k-sample bound; the relaxations: of a relaxed objective), while the generative
gradient is grad_theta f at sampled codes. The estimators that act on each latent layer's logits
(ARM, DisARM, RELAX) give, as google-research/disarm does, a multiplier g ~= dL / d logits per
example and logit; the inference loss -sum sg(g) * logits then hands g to the tape.

| name | inference gradient | unbiased for |
| --- | --- | --- |
| ``reinforce`` | (f - control variates) grad log q (`estimators.ScoreFunction`) | the ELBO |
| ``nvil`` | (f - m - C_psi(x)) / max(1, sd) grad log q, C_psi a baseline network [1] | the ELBO |
| ``rloo`` | k samples, f_s - mean_{j != s} f_j as each one's baseline [2] | the ELBO |
| ``vimco`` | the k-sample bound, leave-one-out per-sample signals (TFP's VIMCO) [3] | L_k |
| ``arm`` | (f(b1) - f(b2)) (u - 1/2), b1 = 1[u > sigmoid(-l)], b2 = 1[u < sigmoid(l)] [4] | the ELBO (bits) |
| ``disarm`` | 1/2 (f(b1) - f(b2)) 1[b1 != b2] (-1)^b2 sigmoid(abs(l)) [5] | the ELBO (bits) |
| ``relax`` | (f(b) - c(z~)) grad log q + grad c(z) - grad c(z~), c learned to cut variance [6] | the ELBO |
| ``gumbel`` | path-wise through the Concrete relaxation at temperature tau [7, 8] | the relaxed ELBO |
| ``straight_through`` | forward: the discrete sample; backward: the relaxation's gradient [7] | (biased) |
| ``enumerate`` | exact: sum_b q(b|x) f(b) over the code's support | the ELBO (exact) |

For a belief network, ARM, DisARM and RELAX run per layer l with b_1..b_{l-1} fixed and the
layers above l drawn again after each b_l (as the DisARM authors' multi-layer code); the
score-function family uses the joint log q(b|x).

References:
  [1] Mnih and Gregor (2014). Neural Variational Inference and Learning in Belief Networks. ICML.
  [2] Kool, van Hoof and Welling (2019). Buy 4 REINFORCE Samples, Get a Baseline for Free! ICLR
      Workshop DeepRLStructPred.
  [3] Mnih and Rezende (2016). Variational Inference for Monte Carlo Objectives. ICML.
  [4] Yin and Zhou (2019). ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks.
      ICLR.
  [5] Dong, Mnih and Tucker (2020). DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables. NeurIPS.
  [6] Grathwohl, Choi, Wu, Roeder and Duvenaud (2018). Backpropagation through the Void. ICLR;
      Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein (2017). REBAR. NeurIPS.
  [7] Jang, Gu and Poole (2017). Categorical Reparameterization with Gumbel-Softmax. ICLR.
  [8] Maddison, Mnih and Teh (2017). The Concrete Distribution. ICLR.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import ConfigError
from tfvae.inference.estimators import (ESTIMATORS, Estimator, ScoreFunction, Terms,
                                        control_variates, rate_terms, stop_gradient)

tfd = tfp.distributions

BINARY_ONLY = ("arm", "disarm")
# Every estimator for discrete codes (here, in `relaxations` and `enumeration`).
NAMES = ("reinforce", "nvil", "rloo", "vimco", "arm", "disarm", "relax", "gumbel",
         "straight_through", "enumerate")


def needs_discrete(name, model, families=("bernoulli", "categorical")):
    """Every latent node must be a discrete code of one of ``families``."""
    codes = getattr(model.latents, "codes", None)
    if not codes:
        raise ConfigError(
            f"estimator.name={name!r} trains discrete codes, but model.posterior.name="
            f"{model.posterior_name!r} is continuous; use model.posterior.name='bernoulli' or "
            "'categorical' (with model.prior.name the same), or a continuous estimator such as "
            "'reparameterized'")
    family = codes[0].name
    if family not in families:
        raise ConfigError(
            f"estimator.name={name!r} is defined for binary codes, not model.posterior.name="
            f"{family!r}; for categorical codes use rloo, vimco, nvil, reinforce, relax, gumbel, "
            "straight_through or enumerate")


def _samples_at_least(name, model, k):
    if model.num_samples < k:
        raise ConfigError(f"estimator.name={name!r} needs model.num_samples >= {k} (it has "
                          f"{model.num_samples}); e.g. model.num_samples=2")


def _report(model, q, z, log_px, loss, group_losses=None, extras=None) -> Terms:
    """`Terms` from samples ``z`` of q and their ``log_px`` ``[S, B]``."""
    distortion = -tf.reduce_mean(log_px, axis=0)
    rate, rates = rate_terms(model, q, stop_gradient(z))
    return Terms(loss=loss, elbo=-(distortion + rate), distortion=distortion, rate=rate,
                 rates=rates, group_losses=group_losses or {}, extras=extras or {})


def learning_signal(model, x, q, z, beta, training):
    """``(f, log p(x|z))``, each ``[S, B]``: f = log p(x|z) + beta (log p(z) - log q(z|x)), the
    generative gradient flowing through log p (z held fixed)."""
    z = stop_gradient(z)
    log_px = model.likelihood(z, training=training).log_prob(x)
    return log_px + beta * (model.log_prior(z) - tf.stop_gradient(q.log_prob(z))), log_px


# ---------------------------------------------------------------------- the score-function family
@ESTIMATORS.register("reinforce")
class Reinforce(ScoreFunction):
    """REINFORCE on a discrete code: `estimators.ScoreFunction` with the control variates of
    ``estimator.control_variates`` (centered, scaled, self_critic, baseline)."""

    name_in_config = "reinforce"

    def check(self, model) -> None:
        needs_discrete(self.name_in_config, model)


@ESTIMATORS.register("nvil")
class NVIL(Reinforce):
    """NVIL (Mnih and Gregor 2014): the learning signal centred by a running mean and an
    input-dependent baseline network C_psi(x) (trained by squared error in the ``baseline``
    parameter group, with its own optimiser where ``train.groups.baseline`` names one), then
    divided by max(1, running sd): the chain ``baseline,scaled`` unless
    ``estimator.control_variates`` names another."""

    name_in_config = "nvil"

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        chain = control_variates(block, allowed=True) or ["baseline", "scaled"]
        return cls(control_variates=chain, name="estimator")


@ESTIMATORS.register("rloo")
class RLOO(Estimator):
    """REINFORCE leave-one-out with k = ``model.num_samples`` >= 2 samples per example:

        grad ~= 1/k sum_s (f_s - 1/(k-1) sum_{j != s} f_j) grad log q(b_s|x).
    """

    gradient = ("score_function", "baseline: leave-one-out")

    def check(self, model) -> None:
        needs_discrete("rloo", model)
        _samples_at_least("rloo", model, 2)

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        z = stop_gradient(q.sample(model.num_samples))
        f, log_px = learning_signal(model, x, q, z, beta, training)
        k = tf.cast(tf.shape(f)[0], f.dtype)
        advantage = tf.stop_gradient(k / (k - 1.0) * (f - tf.reduce_mean(f, 0)))
        loss = -tf.reduce_mean(f + advantage * q.log_prob(z))
        return _report(model, q, z, log_px, loss)


@ESTIMATORS.register("vimco")
class VIMCO(Estimator):
    """VIMCO (Mnih and Rezende 2016) with k = ``model.num_samples`` >= 2 importance samples:
    the k-sample bound L_k = log 1/k sum_s w_s, w_s = p(x, b_s) / q(b_s|x) (reported as
    ``iwae``), for the generative model too, and the inference gradient

        sum_s (L_k - L_k^{-s}) grad log q(b_s|x) + sum_s w~_s grad log w_s,

    L_k^{-s} with w_s replaced by the geometric mean of the others (TFP's
    ``tfp.stats.log_soomean_exp``). The same surrogate as TFP's ``csiszar_vimco`` (the
    ``GradientEstimators.VIMCO`` of ``tfp.vi.monte_carlo_variational_loss``) at
    ``discrepancy_fn=kl_reverse``, on samples drawn here: TFP's own draw goes through stateless
    int64 samplers, which XLA compiles to a path several times slower on CPU. No rate weight
    (``train.beta`` = 1)."""

    gradient = ("score_function", "baseline: VIMCO leave-one-out, k-sample bound")
    metric_names = ("iwae",)

    def check(self, model) -> None:
        needs_discrete("vimco", model)
        _samples_at_least("vimco", model, 2)
        if model.beta != 1.0 or model.kl_warmup_steps:
            raise ConfigError("estimator.name='vimco' optimises the k-sample bound, which has no "
                              "rate weight; use train.beta=1 and train.kl_warmup_epochs=0")

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        z = stop_gradient(q.sample(model.num_samples))
        log_px = model.likelihood(z, training=training).log_prob(x)
        log_q = q.log_prob(z)
        log_w = log_px + model.log_prior(z) - log_q                             # [k, B]
        log_soo, bound = tfp.stats.log_soomean_exp(log_w, axis=0)              # [k, B], [B]
        signal = tf.stop_gradient(bound - log_soo)                             # L_k - L_k^{-s}
        surrogate = bound + tf.reduce_sum(signal * log_q, 0)
        loss = -tf.reduce_mean(surrogate - tf.stop_gradient(surrogate) + tf.stop_gradient(bound))
        return _report(model, q, z, log_px, loss, extras={"iwae": tf.reduce_mean(bound)})


# ---------------------------------------------------------------------- per-layer estimators
class PerLayer(Estimator):
    """ARM, DisARM and RELAX: for each latent layer l, a multiplier g_l ~= dL/d logits_l from
    f at codes that differ in b_l (the layers above b_l drawn again), given a base sample of
    b_1..b_{l-1}; the inference loss is -mean_b sum_l sum_i sg(g_l) logits_l, the generative
    loss -mean f at the first layer's codes."""

    families = ("bernoulli", "categorical")
    name_in_config = ""

    def check(self, model) -> None:
        needs_discrete(self.name_in_config, model, self.families)

    @staticmethod
    def f_of(model, x, q, prefix, beta, training):
        """``(f, log p(x|z), z)`` of the code with b_1..b_m = ``prefix``, the rest drawn."""
        z = model.latents.complete(model, [tf.stop_gradient(b) for b in prefix], training)
        f, log_px = learning_signal(model, x, q, z, beta, training)
        return f, log_px, z

    def layer_multiplier(self, model, x, q, base, l, logits, beta, training):
        """``(g [S, B, d_l], f [S, B], log p(x|z), z, variance loss or None)`` for layer l."""
        raise NotImplementedError

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        layers = model.latents.num_layers
        # A base draw of b_1..b_{L-1} fixes each layer's parent; one layer needs none (its
        # estimator draws its own codes), only the shape [S, B, d].
        base = list(q.sample(model.num_samples)) if layers > 1 else [None]
        inference, variance_losses = 0.0, []
        for l in range(layers):
            parent = x if l == 0 else tf.stop_gradient(base[l - 1])
            logits = model.latents.logits(model, x, l, parent, training)
            if base[l] is None:
                base[l] = tf.zeros(tf.concat([[model.num_samples], tf.shape(logits)], 0))
            g, f, log_px, z, variance = self.layer_multiplier(model, x, q, base, l, logits,
                                                              beta, training)
            if l == 0:
                generative, first = -tf.reduce_mean(f), (z, log_px)
            inference += -tf.reduce_mean(tf.reduce_sum(tf.stop_gradient(g) * logits, -1))
            if variance is not None:
                variance_losses.append(variance)
        groups, extras = {"generative": generative, "inference": inference}, {}
        if variance_losses:  # RELAX: its control variate's parameters minimise the variance
            groups["baseline"] = extras["cv_loss"] = tf.add_n(variance_losses)
        return _report(model, q, first[0], first[1], generative + inference, groups, extras)


def antithetic_pair(model, x, q, base, l, logits, beta, training):
    """ARM's pair for layer l: u ~ U(0, 1), b1 = 1[u > sigmoid(-l)], b2 = 1[u < sigmoid(l)]
    (each b ~ q marginally), and f at each (the layers above drawn again); both codes go
    through the decoder as one batch."""
    u = tf.random.uniform(tf.shape(base[l]), dtype=logits.dtype)
    sigma = tf.sigmoid(logits)
    b1 = tf.cast(u > 1.0 - sigma, u.dtype)
    b2 = tf.cast(u < sigma, u.dtype)
    prefix = [tf.concat([b, b], 0) for b in base[:l]] + [tf.concat([b1, b2], 0)]
    f, log_px, z = PerLayer.f_of(model, x, q, prefix, beta, training)
    f1, f2 = tf.split(f, 2, axis=0)
    first = tf.nest.map_structure(lambda t: tf.split(t, 2, axis=0)[0], z)
    return u, b1, b2, f1, f2, tf.split(log_px, 2, axis=0)[0], first


@ESTIMATORS.register("arm")
class ARM(PerLayer):
    """Augment-REINFORCE-Merge (Yin and Zhou 2019) for bits: g = (f(b1) - f(b2)) (u - 1/2),
    one antithetic pair per sample (``model.num_samples`` pairs)."""

    name_in_config = "arm"
    families = ("bernoulli",)
    gradient = ("score_function", "ARM antithetic pair")

    def layer_multiplier(self, model, x, q, base, l, logits, beta, training):
        u, _, _, f1, f2, log_px, z = antithetic_pair(model, x, q, base, l, logits, beta, training)
        return (f1 - f2)[..., None] * (u - 0.5), 0.5 * (f1 + f2), log_px, z, None


@ESTIMATORS.register("disarm")
class DisARM(ARM):
    """DisARM (Dong, Mnih and Tucker 2020): ARM with the augmenting noise integrated out given
    the pair, g = 1/2 (f(b1) - f(b2)) 1[b1 != b2] (-1)^b2 sigmoid(|l|); never more variance
    than ARM, at the same cost."""

    name_in_config = "disarm"
    gradient = ("score_function", "DisARM antithetic pair")

    def layer_multiplier(self, model, x, q, base, l, logits, beta, training):
        _, b1, b2, f1, f2, log_px, z = antithetic_pair(model, x, q, base, l, logits, beta,
                                                       training)
        factor = tf.abs(b1 - b2) * (1.0 - 2.0 * b2) * tf.sigmoid(tf.abs(logits))
        return 0.5 * (f1 - f2)[..., None] * factor, 0.5 * (f1 + f2), log_px, z, None
