"""Diagnostics of a trained model: trust in importance-sampled estimates, and where the rate goes.

- `effective_sample_size`: ESS = (sum_s w_s)^2 / sum_s w_s^2 of the importance weights
  w_s = p(x, z_s) / q(z_s|x), per image. ESS / k near 1 means q(z|x) is close to p(z|x).
- `pareto_khat`: the shape k-hat of a generalised Pareto distribution fitted to the largest
  weights (Pareto-smoothed importance sampling; Vehtari, Simpson, Gelman, Yao and Gabry 2024).
  The weights' variance is finite for k < 1/2; estimates are reliable for k-hat <= 0.7 and not
  above it, whatever the ESS says (ESS is itself estimated from the weights it judges).
- `elbo_surgery`: the rate split R = I_q(n; z) + KL(q(z) || p(z)) (Hoffman and Johnson 2016),
  the mutual information between the image index and the code under q, and the marginal KL
  between the aggregated posterior q(z) = 1/N sum_n q(z|x_n) of N images and the prior: a prior
  that leaves "holes" q(z) does not fill has a large marginal KL.
- `mean_and_se`: a mean with its standard error over images.

Everything here takes arrays (NumPy) or a model and a batch of images; nothing trains.

References:
  [1] Vehtari, Simpson, Gelman, Yao and Gabry (2024). Pareto Smoothed Importance Sampling. JMLR.
  [2] Zhang and Stephens (2009). A New and Efficient Estimation Method for the Generalized
      Pareto Distribution. Technometrics 51.
  [3] Hoffman and Johnson (2016). ELBO surgery: yet another way to carve up the variational
      evidence lower bound. NIPS Workshop on Advances in Approximate Bayesian Inference.
  [4] Burda, Grosse and Salakhutdinov (2016). Importance Weighted Autoencoders. ICLR.
"""
from typing import Dict

import numpy as np
import tensorflow as tf

from tfvae.distributions import priors

KHAT_THRESHOLD = 0.7  # above it the importance-sampled estimate of an image is not reliable


def mean_and_se(values) -> Dict[str, float]:
    """Mean and standard error sd / sqrt(n) of per-image ``values``."""
    v = np.asarray(values, np.float64)
    se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"mean": float(np.mean(v)), "se": se}


def _logsumexp(a, axis=0):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def effective_sample_size(log_w) -> np.ndarray:
    """ESS per column of log-weights ``[k, B]``: exp(2 lse(log w) - lse(2 log w)), in [1, k]."""
    log_w = np.asarray(log_w, np.float64)
    return np.exp(2.0 * _logsumexp(log_w, 0) - _logsumexp(2.0 * log_w, 0))


def _gpd_fit(exceedances: np.ndarray):
    """Shape k of a generalised Pareto distribution fitted to sorted positive ``exceedances``
    by Zhang and Stephens' (2009) empirical Bayes estimate, with the weakly informative prior
    on k of Vehtari et al. (shrinks k towards 1/2 for short tails: 10 pseudo-observations)."""
    x = exceedances
    n = len(x)
    m = 30 + int(np.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=np.float64) - 0.5))
    b /= 3.0 * x[int(n / 4 + 0.5) - 1]
    b += 1.0 / x[-1]
    k = np.mean(np.log1p(-b[:, None] * x), axis=1)
    log_lik = n * (np.log(-b / k) - k - 1.0)
    weights = 1.0 / np.sum(np.exp(log_lik[None, :] - log_lik[:, None]), axis=1)
    keep = weights >= 10 * np.finfo(np.float64).eps
    weights, b = weights[keep] / weights[keep].sum(), b[keep]
    b_post = np.sum(b * weights)
    k_post = np.mean(np.log1p(-b_post * x))
    return (n * k_post + 10 * 0.5) / (n + 10)


def pareto_khat(log_w) -> np.ndarray:
    """PSIS k-hat per column of log-weights ``[k, B]``, from the largest M = min(k / 5,
    3 sqrt(k)) weights (at least 5 are needed; fewer give NaN)."""
    log_w = np.asarray(log_w, np.float64)
    k = log_w.shape[0]
    tail = int(min(k / 5.0, 3.0 * np.sqrt(k)))
    out = np.full(log_w.shape[1], np.nan)
    if tail < 5:
        return out
    for j in range(log_w.shape[1]):
        lw = np.sort(log_w[:, j])
        lw = lw - lw[-1]                                  # largest weight 1: no overflow
        threshold = lw[-tail - 1]
        exceed = np.exp(lw[-tail:]) - np.exp(threshold)
        if not np.isfinite(threshold) or exceed[-1] <= 0 or np.all(exceed <= 0):
            out[j] = -np.inf  # all weights equal: no tail at all
            continue
        exceed = np.maximum(exceed, np.finfo(np.float64).tiny)
        out[j] = _gpd_fit(exceed)
    return out


def weight_diagnostics(log_w) -> Dict[str, np.ndarray]:
    """Per image, from log-weights ``[k, B]``: the bound log 1/k sum w, ESS, ESS / k, k-hat."""
    log_w = np.asarray(log_w, np.float64)
    k = log_w.shape[0]
    ess = effective_sample_size(log_w)
    return {"log_likelihood": _logsumexp(log_w, 0) - np.log(k), "ess": ess,
            "ess_fraction": ess / k, "khat": pareto_khat(log_w)}


def summarize_weights(per_image: Dict[str, np.ndarray]) -> Dict[str, float]:
    """ESS distribution (mean fraction of k, 5th percentile) and the k-hat verdict."""
    frac, khat = per_image["ess_fraction"], per_image["khat"]
    finite = khat[np.isfinite(khat)] if np.any(np.isfinite(khat)) else np.zeros(0)
    return {
        "ess_fraction_mean": float(np.mean(frac)),
        "ess_fraction_p5": float(np.percentile(frac, 5)),
        "khat_median": float(np.median(finite)) if len(finite) else float("nan"),
        "khat_max": float(np.max(finite)) if len(finite) else float("nan"),
        "unreliable_images": int(np.sum(khat > KHAT_THRESHOLD)),
        "khat_threshold": KHAT_THRESHOLD,
    }


def _aggregate_log_density(q_params, z, chunk=256):
    """log q(z_m) = log 1/N sum_n q(z_m | x_n) for each row of ``z`` ``[M, L]``; ``q_params`` is
    ``(loc [N, L], scale [N, L])`` of Gaussian posteriors."""
    loc, scale = q_params
    logits = tf.zeros([tf.shape(loc)[0]], z.dtype)
    parts = [priors.diagonal_gaussian_mixture_log_prob(z[i:i + chunk], logits, loc, scale)
             for i in range(0, int(z.shape[0]), chunk)]
    return tf.concat(parts, 0)


def elbo_surgery(model, images, seed=None) -> Dict[str, Dict[str, float]]:
    """R = I_q(n; z) + KL(q(z) || p(z)) over the N ``images`` ``[N, H, W, C]``.

    Estimator: one draw z_n ~ q(z|x_n) per image; with log q(z) = log 1/N sum_m q(z | x_m)
    (exact for the aggregated posterior of these N images),

        I  ~= 1/N sum_n [log q(z_n|x_n) - log q(z_n)],
        KL ~= 1/N sum_n [log q(z_n) - log p(z_n)],

    whose per-image terms add up exactly to the one-sample rate estimate log q(z_n|x_n) -
    log p(z_n); each is reported with its standard error over images, beside the model's own
    rate R (analytic where TFP has it). I is at most log N. Needs Gaussian posteriors.

    With several latent layers this splits the top layer's rate R_L (z = z_L, q(z_L|x) and
    p(z_L)): the lower layers' rates are KLs to conditional priors p(z_l | z_{l+1}), which have
    no aggregate-posterior split of this kind.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    qs, locs, scales, rates = [], [], [], []
    for i in range(0, int(images.shape[0]), 500):
        q = model.encode_top(images[i:i + 500], training=False)
        params = priors.gaussian_parameters(q)
        if params is None:
            raise ValueError("ELBO surgery needs a Gaussian posterior (model.posterior="
                             f"{model.posterior_name!r} is not)")
        z = q.sample(seed=None if seed is None else (seed, i))
        qs.append((q.log_prob(z), z))
        locs.append(params[0])
        scales.append(tf.broadcast_to(params[1], tf.shape(params[0])))
        rates.append(model.top_rate(q, z[None]))
    log_q_own = tf.concat([a for a, _ in qs], 0)
    z = tf.concat([b for _, b in qs], 0)
    log_q_agg = _aggregate_log_density((tf.concat(locs, 0), tf.concat(scales, 0)), z)
    log_p = model.prior.log_prob(z)
    info = (log_q_own - log_q_agg).numpy()
    marginal = (log_q_agg - log_p).numpy()
    return {"rate": mean_and_se(tf.concat(rates, 0).numpy()),
            "rate_one_sample": mean_and_se(info + marginal),
            "mutual_information": mean_and_se(info),
            "marginal_kl": mean_and_se(marginal),
            "max_mutual_information": float(np.log(int(images.shape[0])))}


def collapsed_dimensions(model, images, threshold=0.01, num_samples=16, seed=0):
    """Number of latent dimensions whose mean KL(q(z_d|x) || p(z_d)) over ``images`` is below
    ``threshold`` nats, with p(z_d) the prior's marginal: analytic for the standard normal,
    Monte Carlo (``num_samples`` draws) for a mixture of diagonal Gaussians, whose marginal is
    the 1-D mixture of its components' coordinates; None for other priors (a flow's marginals
    have no tractable density) or non-Gaussian posteriors. With several latent layers: of the
    top layer z_L (the one the prior scores)."""
    q = model.encode_top(images, training=False)
    params = priors.gaussian_parameters(q)
    if params is None:
        return None
    loc, scale = params
    scale = tf.broadcast_to(scale, tf.shape(loc))
    if isinstance(model.prior, priors.StandardNormal):
        kl = 0.5 * (tf.square(loc) + tf.square(scale) - 1.0) - tf.math.log(scale)  # [N, L]
    else:
        mixture = model.prior.mixture_parameters()
        if mixture is None:
            return None
        logits, p_loc, p_scale = mixture                                          # [K], [K, L]
        log_w = tf.nn.log_softmax(logits)
        eps = tf.random.stateless_normal((num_samples,) + tuple(loc.shape), seed=[seed, 7])
        z = loc + scale * eps                                                     # [S, N, L]
        log_q = -0.5 * tf.square(eps) - tf.math.log(scale) - 0.5 * np.log(2 * np.pi)
        per_dim = []
        for d in range(int(loc.shape[-1])):  # one dimension at a time: [S, N, K], not [S, N, K, L]
            comp = (-0.5 * tf.square((z[..., d, None] - p_loc[:, d]) / p_scale[:, d])
                    - tf.math.log(p_scale[:, d]) - 0.5 * np.log(2 * np.pi))
            per_dim.append(tf.reduce_logsumexp(comp + log_w, axis=-1))           # [S, N]
        kl = tf.reduce_mean(log_q - tf.stack(per_dim, -1), axis=0)                # [N, L]
    return int(np.sum(np.mean(kl.numpy(), axis=0) < threshold))
