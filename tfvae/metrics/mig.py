"""The mutual information gap (Chen, Li, Grosse and Duvenaud 2018): for each factor v_k, the
gap between the two code dimensions that know most about it, in units of its entropy,

    MIG = 1/K sum_k (I(z_{j(1)}; v_k) - I(z_{j(2)}; v_k)) / H(v_k),

1 when each factor lives in one dimension alone, 0 when none or two share it equally.

Two published protocols, which give different numbers for one model:

- ``mig``, disentanglement_lib's (Locatello et al. 2019): codes are the encoder means, each
  dimension binned into 20 equal-width bins, I by the plug-in estimate, every factor included
  (dSprites' shape too);
- ``mig_sampled``, Chen et al.'s own code (``rtqichen/beta-tcvae``): I(z_j; v_k) = H(z_j) -
  H(z_j | v_k) with H estimated from samples z ~ q(z|x) under the aggregate posterior q(z_j) =
  1/N sum_n q(z_j|x_n) (and the same per value of v_k), H(v_k) = log V_k; on dSprites their
  code leaves the shape factor out (``exclude``).
"""
from typing import Sequence

import numpy as np

from tfvae.metrics import check_codes, discrete_entropy, discrete_mutual_information, \
    discretize


def gap(mutual_information: np.ndarray, factor_entropy: np.ndarray) -> float:
    """MIG from ``I [L, K]`` (codes x factors) and ``H(v_k) [K]``."""
    if mutual_information.shape[0] < 2:
        raise ValueError("MIG needs a code of at least 2 dimensions")
    top = np.sort(mutual_information, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / factor_entropy))


def mig(codes, factors, num_bins: int = 20) -> float:
    """disentanglement_lib's MIG: ``codes [N, L]`` the encoder means, ``factors [N, K]``."""
    codes, factors = check_codes(codes, factors)
    mi = discrete_mutual_information(discretize(codes, num_bins), factors)
    return gap(mi, discrete_entropy(factors))


def _log_normal(z, loc, scale):
    return -0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def aggregate_entropies(z, loc, scale, chunk: int = 256) -> np.ndarray:
    """``H(z_j)`` per dimension ``[L]`` under q(z_j) = 1/N sum_n N(z_j; loc_nj, scale_nj),
    estimated at samples ``z [S, L]`` of it: mean_s [-log q(z_sj)]."""
    total = np.zeros(z.shape[1])
    for i in range(0, len(z), chunk):
        log_q = _log_normal(z[i:i + chunk, None, :], loc[None], scale[None])  # [s, N, L]
        peak = log_q.max(1, keepdims=True)
        log_mix = np.log(np.mean(np.exp(log_q - peak), axis=1)) + peak[:, 0]
        total -= log_mix.sum(0)
    return total / len(z)


def mig_sampled(loc, scale, factors, num_values: Sequence[int] = (), exclude: Sequence[int] = (),
                num_samples: int = 10000, seed: int = 0) -> float:
    """Chen et al.'s MIG from the posteriors q(z|x_n) = N(loc_n, scale_n^2) ``[N, L]`` of the
    images with ``factors [N, K]`` (V_k values each, ``num_values``; default the values seen).
    H(z_j) uses ``num_samples`` z_n ~ q(z|x_n) of random images; H(z_j | v_k) averages over
    the values of v_k the entropy among the images with that value. Factors in ``exclude``
    (indices) are left out, as their code leaves dSprites' shape out."""
    loc, factors = check_codes(loc, factors)
    scale = np.asarray(scale, np.float64)
    rng = np.random.default_rng(seed)
    num_values = tuple(num_values) or tuple(int(v) for v in factors.max(0) + 1)
    z = loc + scale * rng.standard_normal(loc.shape)

    def entropy(members):
        pick = members if len(members) <= num_samples else rng.choice(members, num_samples,
                                                                      replace=False)
        return aggregate_entropies(z[pick], loc[members], scale[members])
    marginal = entropy(np.arange(len(loc)))
    kept = [k for k in range(factors.shape[1]) if k not in set(exclude)]
    mi = np.zeros((loc.shape[1], len(kept)))
    for col, k in enumerate(kept):
        values = np.unique(factors[:, k])
        conditional = sum(entropy(np.flatnonzero(factors[:, k] == v)) for v in values)
        mi[:, col] = np.maximum(marginal - conditional / len(values), 0.0)
    return gap(mi, np.log(np.asarray([num_values[k] for k in kept], np.float64)))
