"""Likelihood heads: event shape = image shape, correct log-probs, normalised densities."""
import numpy as np
import pytest
import tensorflow as tf

from tfvae.distributions import likelihoods
from tfvae.errors import ConfigError


def _head(name):
    """The likelihood head of that name."""
    import ml_collections
    return likelihoods.build(ml_collections.ConfigDict({"name": name, "components": 5}))


def test_bernoulli_log_prob_matches_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5, 1)).astype(np.float32)  # [S, B, H, W, C]
    x = (rng.random((3, 4, 5, 1)) < 0.5).astype(np.float32)       # [B, H, W, C]
    dist = _head("bernoulli").distribution(tf.constant(logits))
    assert dist.event_shape == (4, 5, 1) and dist.batch_shape == (2, 3)
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=(2, 3, 4))
    np.testing.assert_allclose(dist.log_prob(x).numpy(), expected, rtol=1e-5)


def test_continuous_bernoulli_is_a_normalised_density():
    logits = np.array([-4.0, -1.0, -0.01, 0.0, 0.3, 2.5], np.float32).reshape(1, 1, 6, 1)
    dist = _head("continuous_bernoulli").distribution(tf.constant(logits))
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
    dist = _head("continuous_bernoulli").distribution(tf.constant(logits))
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))  # the normaliser C(lambda)
    expected = np.sum(log_c + x * np.log(lam) + (1 - x) * np.log1p(-lam))
    got = dist.log_prob(x.reshape(1, 1, 3, 1).astype(np.float32)).numpy()
    np.testing.assert_allclose(got, [expected], rtol=1e-4)


def test_unknown_likelihood_lists_valid_ones():
    with pytest.raises(ConfigError, match="model.likelihood.name='gaussian_mixture': unknown "
                                          "likelihood; valid likelihoods are: bernoulli, "
                                          "categorical, continuous_bernoulli"):
        _head("gaussian_mixture")


GRID = np.arange(256, dtype=np.float32) / 255.0
LEVEL_HEADS = [("discretized_logistic", 2), ("discretized_logistic_mixture", 15),
               ("categorical", 256)]


@pytest.mark.parametrize("name,params", LEVEL_HEADS)
def test_probabilities_over_the_256_levels_sum_to_one(name, params):
    """For any parameters, including extreme locations and scales."""
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(1, 2, 3, params)).astype(np.float32) * 4  # [B, H, W, C * P]
    outputs[..., 1::params] -= 6.0                     # very small scales in some pixels
    head = _head(name)
    assert head.params_per_pixel == params
    pixel = head(tf.constant(outputs)).distribution      # batch [1, 2, 3, 1]
    log_p = pixel.log_prob(GRID.reshape(-1, 1, 1, 1, 1)).numpy()   # [256, 1, 2, 3, 1]
    np.testing.assert_allclose(np.exp(log_p).sum(0), 1.0, atol=2e-5)


def test_discretized_logistic_matches_the_cdf_difference():
    """Interior levels: F(x + 1/510) - F(x - 1/510); level 0: F(1/510); level 1: 1 - F(1 - 1/510),
    with F the logistic CDF, in float64."""
    loc, log_scale = 0.37, -2.5
    dist = likelihoods.DiscretizedLogistic(tf.constant(loc), tf.constant(log_scale))
    s = np.exp(log_scale)
    cdf = lambda v: 1.0 / (1.0 + np.exp(-(v - loc) / s))  # noqa: E731
    half = 0.5 / 255
    expected = cdf(GRID.astype(np.float64) + half) - cdf(GRID.astype(np.float64) - half)
    expected[0], expected[-1] = cdf(half), 1.0 - cdf(1.0 - half)
    got = np.exp(dist.log_prob(tf.constant(GRID)).numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name,params", LEVEL_HEADS)
def test_samples_lie_on_the_256_level_grid(name, params):
    outputs = np.random.default_rng(2).normal(size=(2, 4, 5, params)).astype(np.float32)
    x = _head(name).distribution(tf.constant(outputs)).sample(3, seed=(1, 2)).numpy()
    assert x.shape == (3, 2, 4, 5, 1) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)


def test_level_likelihoods_need_grey_pixels_and_report_bits_per_dim():
    from conftest import make_config
    from tfvae.models import builder
    with pytest.raises(ConfigError, match="model.likelihood.name='categorical' models the 256 grey "
                                          "levels.*use data.pixels='continuous'"):
        builder.build(make_config(model__likelihood__name="categorical"), (28, 28, 1))
    assert likelihoods.bits_per_dim(-784 * np.log(2.0), 784) == pytest.approx(1.0)


def test_discretized_logistic_trains_on_grey_fashion_mnist(fashion_idx_dir):
    """Grey-level FashionMNIST (the sample): bits/dim of the validation ELBO falls over the
    first epochs."""
    import tf_keras as keras
    from conftest import make_config
    from tfvae import data
    from tfvae.models import builder
    config = make_config(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=300,
                         data__validation_size=500, data__pixels="continuous",
                         model__likelihood__name="discretized_logistic", model__network__hidden=(256, 256))
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=8)
    bits = []
    for _ in range(4):
        vae.fit(splits.train, epochs=1, verbose=0)
        val = vae.evaluate(splits.validation, verbose=0, return_dict=True)
        bits.append(likelihoods.bits_per_dim(val["elbo"], 784))
    assert np.all(np.isfinite(bits)) and bits[-1] < bits[0] - 0.2 and bits[-1] < 6.0, bits


def test_gaussian_head_is_a_normal_per_value_summed_over_the_event():
    head = likelihoods.LIKELIHOODS.get("gaussian")()
    params = tf.random.normal([3, 1, 1, 2 * 5], seed=1)  # [B, 1, 1, d * P], P = 2
    x = tf.random.normal([3, 1, 1, 5], seed=2)
    p = head.distribution(params)
    loc, raw = np.asarray(params).reshape(3, 1, 1, 5, 2)[..., 0], \
        np.asarray(params).reshape(3, 1, 1, 5, 2)[..., 1]
    scale = np.log1p(np.exp(raw)) + 1e-3
    expected = (-0.5 * ((np.asarray(x) - loc) / scale) ** 2 - np.log(scale)
                - 0.5 * np.log(2 * np.pi)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(p.log_prob(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert p.event_shape == (1, 1, 5) and np.allclose(p.mean().numpy(), loc, atol=1e-6)
