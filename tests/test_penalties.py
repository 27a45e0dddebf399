"""The penalised objectives (`tfvae.inference.penalties`): their estimators' defining identities
and statistics, then each one training on real images."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import make_config
from tfvae.errors import ConfigError
from tfvae.inference import penalties


def _model(name, **estimator):
    from tfvae.models import builder
    config = make_config(estimator__name=name, model__network__hidden=(64,),
                         model__latent_dims=(4,), **{f"estimator__{k}": v
                                                     for k, v in estimator.items()})
    keras.utils.set_random_seed(0)
    return builder.build(config, (28, 28, 1), num_train=1000)


def _images(n=64, seed=0):
    return tf.cast(np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.3, tf.float32)


@pytest.mark.parametrize("sampling", penalties.TC_SAMPLING)
def test_beta_tcvae_with_unit_weights_is_the_monte_carlo_elbo(sampling):
    """MI + TC + dimension-wise KL telescopes to log q(z|x) - log p(z), whatever estimates
    log q(z): with every weight 1 the loss is mean(D + log q(z|x) - log p(z)) at the same z."""
    vae = _model("beta_tcvae", weight=1.0, tc_sampling=sampling)
    x = _images()
    tf.random.set_seed(3)
    terms = vae.estimator.terms(vae, x)
    tf.random.set_seed(3)
    q = vae.encode(x)
    z = q.sample(1)
    expected = tf.reduce_mean(-vae.likelihood(z).log_prob(x)[0] + q.log_prob(z)[0]
                              - vae.log_prior(z)[0])
    assert float(terms.loss) == pytest.approx(float(expected), rel=1e-5)


def test_stratified_estimate_of_the_aggregate_posterior_is_unbiased():
    """E_batch[exp log q^(z)] = q(z) = 1/N sum_n q(z|x_n) for z ~ q(z|x_0), over batches holding
    x_0 and B - 1 others drawn without replacement (Chen et al.'s MSS weights)."""
    rng = np.random.default_rng(0)
    n, b, d = 40, 8, 2
    loc = rng.normal(0, 1.0, (n, d)).astype(np.float32)
    scale = rng.uniform(0.3, 1.0, (n, d)).astype(np.float32)
    z = (loc[0] + scale[0] * rng.standard_normal(d)).astype(np.float32)
    log_q = -0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    exact = np.mean(np.exp(log_q.sum(1)))
    draws = []
    for _ in range(1500):
        batch = np.concatenate([[0], rng.choice(np.arange(1, n), b - 1, replace=False)])
        zs = np.repeat(z[None], b, 0)  # row 0 is the sample of interest
        log_qz, _ = penalties.aggregate_log_densities(tf.constant(zs), tf.constant(loc[batch]),
                                                      tf.constant(scale[batch]), n, "mss")
        draws.append(float(np.exp(log_qz[0])))
    draws = np.asarray(draws)
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(len(draws))
    np.testing.assert_allclose(np.exp(penalties.log_importance_weights(b, n).numpy()).sum(1),
                               1.0, rtol=1e-6)


def test_identical_posteriors_have_no_mutual_information_nor_total_correlation():
    loc = tf.fill([16, 3], 0.4)
    scale = tf.fill([16, 3], 0.7)
    z = tf.random.stateless_normal([16, 3], [1, 2]) * scale + loc
    log_qz, log_marg = penalties.aggregate_log_densities(z, loc, scale, 1000, "mss")
    log_qz_x = tf.reduce_sum(penalties.tfd.Normal(loc, scale).log_prob(z), -1)
    np.testing.assert_allclose(log_qz_x - log_qz, 0.0, atol=1e-5)   # MI
    np.testing.assert_allclose(log_qz - log_marg, 0.0, atol=1e-5)   # TC


def test_dip_penalty_and_covariance():
    eye = tf.eye(3)
    assert float(penalties.dip_penalty(eye, 10.0, 100.0)) == 0.0
    cov = tf.constant([[2.0, 0.5], [0.5, 1.0]])
    assert float(penalties.dip_penalty(cov, 10.0, 100.0)) == pytest.approx(10 * 0.5 + 100 * 1)
    x = tf.random.stateless_normal([20000, 2], [3, 4]) @ tf.constant([[1.0, 0.6], [0.0, 0.8]])
    np.testing.assert_allclose(penalties.covariance(x), [[1.0, 0.6], [0.6, 1.0]], atol=0.05)


def test_mmd_is_unbiased_at_zero_and_positive_between_different_laws():
    values = [float(penalties.mmd(tf.random.stateless_normal([64, 4], [i, 0]),
                                  tf.random.stateless_normal([64, 4], [i, 1])))
              for i in range(300)]
    mean, se = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 4 * se
    shifted = penalties.mmd(tf.random.stateless_normal([64, 4], [9, 0]),
                            2.0 + tf.random.stateless_normal([64, 4], [9, 1]))
    assert float(shifted) > 20 * se


def test_permuted_dimensions_keep_each_column_and_break_their_dependence():
    z = tf.random.stateless_normal([4000, 1], [5, 6])
    pair = tf.concat([z, z], 1)               # perfectly correlated columns
    tf.random.set_seed(7)
    mixed = penalties.permute_dimensions(pair).numpy()
    for j in range(2):
        np.testing.assert_array_equal(np.sort(mixed[:, j]), np.sort(pair[:, j].numpy()))
    assert abs(np.corrcoef(mixed.T)[0, 1]) < 0.1


def test_factor_vae_discriminator_estimates_a_known_total_correlation():
    """On a bivariate Gaussian of correlation rho, TC = -1/2 log(1 - rho^2) (0.830 nats at
    rho = 0.9): the trained discriminator's density ratio recovers it."""
    est = penalties.FactorVAE(hidden=(64, 64), weight=1.0)

    class _M:
        latent_dim = 2
    est.prepare(_M())
    opt = keras.optimizers.Adam(1e-3)
    rho = 0.9
    mix = tf.constant([[1.0, rho], [0.0, math.sqrt(1 - rho ** 2)]])

    @tf.function
    def step(seed):
        z = tf.random.stateless_normal([512, 2], seed) @ mix
        with tf.GradientTape() as tape:
            loss = est.discriminator_loss(z)
        grads = tape.gradient(loss, est.trainable_variables)
        opt.apply_gradients(zip(grads, est.trainable_variables))
        return loss
    tf.random.set_seed(0)
    for i in range(1500):
        step(tf.constant([i, 0]))
    z = tf.random.stateless_normal([20000, 2], [99, 1]) @ mix
    tc = float(est.total_correlation(z))
    assert tc == pytest.approx(-0.5 * math.log(1 - rho ** 2), abs=0.15)


def test_annealed_capacity_grows_to_its_maximum():
    vae = _model("annealed_vae", capacity_max=10.0, capacity_steps=100)
    x = _images()
    vae.step.assign(50)
    t = vae.estimator.terms(vae, x)
    assert float(t.extras["capacity"]) == pytest.approx(5.0)
    assert float(t.loss) == pytest.approx(float(
        tf.reduce_mean(t.distortion) + 1000.0 * abs(float(tf.reduce_mean(t.rate)) - 5.0)),
        rel=1e-5)
    vae.step.assign(1000)
    assert float(vae.estimator.terms(vae, x).extras["capacity"]) == pytest.approx(10.0)


def test_penalties_refuse_a_model_they_cannot_penalise():
    with pytest.raises(ConfigError, match="one diagonal-Gaussian latent layer"):
        from tfvae.models import builder
        config = make_config(estimator__name="beta_tcvae", model__latent_dims=(4, 4),
                             model__network__hidden=(32,))
        builder.build(config, (28, 28, 1))
    with pytest.raises(ConfigError, match="tc_sampling"):
        _model("beta_tcvae", tc_sampling="exact")


@pytest.mark.slow
@pytest.mark.parametrize("name", penalties.NAMES)
def test_each_objective_trains_on_mnist(name, mnist_arrays):
    """A few hundred steps raise the validation ELBO by far, and the penalty's terms are
    finite (the discriminator of FactorVAE in its own parameter group)."""
    from tfvae import data
    from tfvae.models import builder
    config = make_config(data__train_size=6400, estimator__name=name,
                         estimator__discriminator_hidden=(64, 64), model__latent_dims=(6,),
                         estimator__capacity_steps=200, estimator__capacity_max=10.0)
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        num_train=splits.num_train)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=25)
    before = vae.evaluate(splits.validation.take(2), verbose=0, return_dict=True)
    history = vae.fit(splits.train, epochs=1, verbose=0).history
    after = vae.evaluate(splits.validation.take(2), verbose=0, return_dict=True)
    assert after["elbo"] > before["elbo"] + 150, (before["elbo"], after["elbo"])
    for metric in vae.estimator.metric_names:
        assert np.isfinite(history[metric][-1]), metric
