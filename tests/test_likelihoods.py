"""Likelihood heads: event shape = image shape, correct log-probs, normalised densities."""
import numpy as np
import pytest
import tensorflow as tf

from tfvae import likelihoods
from tfvae.errors import ConfigError


def test_bernoulli_log_prob_matches_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5, 1)).astype(np.float32)  # [S, B, H, W, C]
    x = (rng.random((3, 4, 5, 1)) < 0.5).astype(np.float32)       # [B, H, W, C]
    dist = likelihoods.build("bernoulli")(tf.constant(logits))
    assert dist.event_shape == (4, 5, 1) and dist.batch_shape == (2, 3)
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=(2, 3, 4))
    np.testing.assert_allclose(dist.log_prob(x).numpy(), expected, rtol=1e-5)


def test_continuous_bernoulli_is_a_normalised_density():
    logits = np.array([-4.0, -1.0, -0.01, 0.0, 0.3, 2.5], np.float32).reshape(1, 1, 6, 1)
    dist = likelihoods.build("continuous_bernoulli")(tf.constant(logits))
    grid = np.linspace(0.0, 1.0, 20001, dtype=np.float32)
    # Evaluate each pixel's density on the grid: batch the grid along the leading axis.
    pixel = dist.distribution  # the per-pixel distribution under Independent
    density = np.exp(pixel.log_prob(grid.reshape(-1, 1, 1, 1)).numpy())  # [G, 1, 6, 1]
    integral = np.trapezoid(density[:, 0, :, 0], grid, axis=0)
    np.testing.assert_allclose(integral, 1.0, atol=1e-4)


def test_continuous_bernoulli_log_prob_matches_formula():
    lam = np.array([0.1, 0.3, 0.8], np.float64)
    x = np.array([0.2, 0.9, 0.5], np.float64)
    logits = np.log(lam / (1 - lam)).reshape(1, 1, 3, 1).astype(np.float32)
    dist = likelihoods.build("continuous_bernoulli")(tf.constant(logits))
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))  # the normaliser C(lambda)
    expected = np.sum(log_c + x * np.log(lam) + (1 - x) * np.log1p(-lam))
    got = dist.log_prob(x.reshape(1, 1, 3, 1).astype(np.float32)).numpy()
    np.testing.assert_allclose(got, [expected], rtol=1e-4)


def test_unknown_likelihood_lists_valid_ones():
    with pytest.raises(ConfigError, match="bernoulli, continuous_bernoulli"):
        likelihoods.build("gaussian_mixture")
