"""The FactorVAE disentanglement score (Kim and Mnih 2018), as disentanglement_lib computes it:
codes are rescaled by each dimension's standard deviation over the data; a vote draws a batch of
images in which one factor k (chosen at random) is held at one value and every other factor
varies, and takes the dimension of least rescaled variance, ``argmin_j Var(z_j) / s_j^2``; a
majority-vote classifier from dimension to factor is fitted on ``num_train`` votes, and the score
is its accuracy on ``num_eval`` fresh votes. Dimensions whose standard deviation is below
``threshold`` (collapsed to the prior) take no vote. 1 when each factor moves one dimension alone.
"""
from typing import Callable

import numpy as np

from tfvae.metrics import GroundTruth


def _votes(represent, truth: GroundTruth, rng, num_points, batch_size, scale, active):
    votes = np.zeros((len(truth.num_values), len(scale)), np.int64)
    active_index = np.flatnonzero(active)
    for _ in range(num_points):
        k = rng.integers(len(truth.num_values))
        factors = truth.sample_factors(batch_size, rng)
        factors[:, k] = factors[0, k]
        codes = represent(truth.render(factors))
        local = np.var(codes, axis=0, ddof=1)[active] / scale[active] ** 2
        votes[k, active_index[np.argmin(local)]] += 1
    return votes


def factor_vae_score(represent: Callable[[np.ndarray], np.ndarray], truth: GroundTruth,
                     seed: int = 0, batch_size: int = 64, num_train: int = 10000,
                     num_eval: int = 5000, num_variance: int = 10000,
                     threshold: float = 0.05) -> dict:
    """``{'factor_vae_score', 'factor_vae_train_accuracy', 'num_active_dims'}``.
    ``represent(images) -> codes [N, L]`` (encoder means); ``truth`` renders images of
    chosen factors."""
    rng = np.random.default_rng(seed)
    codes = represent(truth.render(truth.sample_factors(num_variance, rng)))
    scale = np.std(codes, axis=0, ddof=1)
    active = scale >= threshold
    if not active.any():
        return {"factor_vae_score": 0.0, "factor_vae_train_accuracy": 0.0, "num_active_dims": 0}
    train = _votes(represent, truth, rng, num_train, batch_size, scale, active)
    classifier = np.argmax(train, axis=0)          # dimension -> its majority factor
    columns = np.arange(train.shape[1])
    evaluation = _votes(represent, truth, rng, num_eval, batch_size, scale, active)
    return {"factor_vae_score": float(evaluation[classifier, columns].sum() / evaluation.sum()),
            "factor_vae_train_accuracy": float(train[classifier, columns].sum() / train.sum()),
            "num_active_dims": int(active.sum())}
