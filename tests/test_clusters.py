"""The unannotated mixture with a latent component c (`tfvae.models.clusters`): its bound's
identities, its usage term, and training from the command line's config on real images."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import make_config
from tfvae.errors import ConfigError
from tfvae.models import builder


def _model(components=4, **overrides):
    config = make_config(**{"model__label": "cluster", "model__prior__name": "mog",
                            "model__prior__components": components,
                            "model__latent_dims": (3,), "model__network__hidden": (32,),
                            **overrides})
    keras.utils.set_random_seed(0)
    return builder.build(config, (28, 28, 1))


def _images(n=32):
    return tf.cast(np.random.default_rng(0).random((n, 28, 28, 1)) < 0.3, tf.float32)


def test_the_gap_to_the_marginal_bound_is_the_kl_to_the_components_posterior():
    """log sum_c pi_c p(z|c) - sum_c q(c|x) log(pi_c p(z|c) / q(c|x)) = KL(q(c|x) || p(c|z)) at
    every z: the bound with c summed out under q(c|x) is below the mixture prior's ELBO at the
    same z by exactly that, and equal to it where q(c|x) = p(c|z)."""
    vae = _model()
    x = _images()
    seed = tf.constant([3, 4])
    terms = vae.label.bound(vae, x, seed=seed)
    q = vae.encode(x)
    z = q.sample(1, seed=seed)
    marginal = vae.likelihood(z).log_prob(x)[0] + vae.prior.log_prob(z)[0] - q.log_prob(z)[0]
    logits, loc, scale = vae.prior.mixture_parameters()
    per = tf.reduce_sum(-0.5 * ((z[0][:, None] - loc) / scale) ** 2 - tf.math.log(scale)
                        - 0.5 * np.log(2 * np.pi), -1) + tf.nn.log_softmax(logits)
    log_p_c = tf.nn.log_softmax(per)                                   # log p(c | z)
    log_q_c = tf.nn.log_softmax(vae.label.cluster_logits(vae, x))
    kl = tf.reduce_sum(tf.exp(log_q_c) * (log_q_c - log_p_c), -1)
    np.testing.assert_allclose(marginal - terms.elbo, kl, rtol=1e-4, atol=1e-3)
    assert np.all(kl.numpy() >= -1e-5)


def test_one_component_is_the_plain_elbo_with_that_gaussian_prior():
    vae = _model(components=1)
    x, seed = _images(), tf.constant([5, 6])
    terms = vae.label.bound(vae, x, seed=seed)
    q = vae.encode(x)
    z = q.sample(1, seed=seed)
    elbo = vae.likelihood(z).log_prob(x)[0] + vae.prior.log_prob(z)[0] - q.log_prob(z)[0]
    np.testing.assert_allclose(terms.elbo, elbo, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(terms.distortion + terms.rate, -terms.elbo, rtol=1e-6)


def test_usage_term_is_zero_for_even_use_and_log_k_for_one_component():
    vae = _model(components=4, model__cluster_usage_weight=2.0)
    x = _images(8)
    dense = vae.classifier.layers[-1]
    w, b = dense.get_weights()
    dense.set_weights([0 * w, np.array([0, 0, 0, 0], np.float32)])     # q(c|x) uniform
    even = vae.label.bound(vae, x)
    assert float(even.extras["cluster_usage_kl"]) == pytest.approx(0.0, abs=1e-6)
    dense.set_weights([0 * w, np.array([50, 0, 0, 0], np.float32)])    # all on c = 0
    one = vae.label.bound(vae, x)
    assert float(one.extras["cluster_usage_kl"]) == pytest.approx(np.log(4), abs=1e-4)
    assert float(one.loss) == pytest.approx(float(
        tf.reduce_mean(one.distortion + one.rate)) + 2.0 * np.log(4), rel=1e-4)


def test_the_role_refuses_what_it_cannot_be():
    with pytest.raises(ConfigError, match="use 'mog'"):
        _model(model__prior__name="vamp")
    with pytest.raises(ConfigError, match="path-wise"):
        _model(estimator__name="iwae")
    with pytest.raises(ConfigError, match="one Gaussian latent layer"):
        _model(model__latent_dims=(3, 3))


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["enumerate", "score_function"])
def test_it_trains_on_mnist_and_its_clusters_are_scored(tmp_path, estimator):
    from tfvae.training import train
    config = make_config(model__label="cluster", model__prior__name="mog",
                         model__label_estimator=estimator,
                         model__prior__components=10, model__prior__learn_weights=True,
                         model__cluster_usage_weight=10.0, data__train_size=12000,
                         train__epochs=4, eval__iw_samples=10, eval__iw_examples=200,
                         eval__plots=False)
    results = train.train_and_evaluate(config, str(tmp_path / "gmvae"), verbose=0)
    assert results["test"]["elbo"]["mean"] > -150  # about -139 measured; -195 after 1 epoch
    gradient = "enumerated" if estimator == "enumerate" else "score_function"
    assert results["test"]["nodes"][0].startswith(f"c ~ categorical | x: {gradient}")
    assert 0.25 < results["cluster_accuracy"] <= 1.0 and results["clusters_used"] >= 8


def test_two_draw_score_function_is_unbiased_for_the_enumerated_gradient():
    """E[grad surrogate] = grad sum_c q(c|x) g(c) with g depending on the logits (through
    -log q(c|x)) and on other parameters (path-wise), within 4.5 standard errors."""
    from tfvae.models.clusters import two_draw_score_function
    rng = np.random.default_rng(0)
    logits = tf.Variable(rng.normal(size=(3, 5)).astype(np.float32))
    theta = tf.Variable(rng.normal(size=(5,)).astype(np.float32))
    base = tf.constant(rng.normal(0, 3, size=(3, 5)).astype(np.float32))

    def g():
        return base * theta - tf.nn.log_softmax(logits)

    with tf.GradientTape() as tape:
        exact = tf.reduce_sum(tf.nn.softmax(logits) * g())
    exact_grads = [t.numpy() for t in tape.gradient(exact, [logits, theta])]

    @tf.function
    def estimate(seed):
        with tf.GradientTape() as tape:
            value, surrogate = two_draw_score_function(g(), logits, seed)
            total = tf.reduce_sum(surrogate)
        return [tf.reshape(t, [-1]) for t in tape.gradient(total, [logits, theta])] + [value]
    draws = [estimate(tf.constant([i, 7])) for i in range(4000)]
    for k, want in enumerate(exact_grads):
        got = np.stack([d[k].numpy() for d in draws])
        se = got.std(0) / np.sqrt(len(got))
        assert np.all(np.abs(got.mean(0) - want.reshape(-1)) < 4.5 * se + 1e-6), k
    values = np.stack([d[2].numpy() for d in draws]).sum(1)
    assert abs(values.mean() - float(exact)) < 4.5 * values.std() / np.sqrt(len(values))


def test_score_function_training_step_reports_the_same_bound_in_expectation():
    vae = _model(model__label_estimator="score_function")
    assert vae.nodes[0].gradient == "score_function"
    x = _images(16)
    # paired: the same z (the same seed) with c drawn, or with c summed out; the draws'
    # bound minus the sum is zero in expectation
    diffs = [(vae.label.bound(vae, x, training=True, seed=tf.constant([1, i])).elbo
              - vae.label.bound(vae, x, seed=tf.constant([1, i])).elbo).numpy()
             for i in range(200)]
    diff, se = np.mean(diffs, 0), np.std(diffs, 0) / np.sqrt(len(diffs))
    assert np.all(np.abs(diff) < 4.5 * se + 1e-3)
    assert np.std(diffs) > 0.01  # c is drawn, not summed
    with pytest.raises(ConfigError, match="c's gradient is one of"):
        _model(model__label_estimator="gumbel_softmax")
