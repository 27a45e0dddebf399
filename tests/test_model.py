"""The VAE: KL, bounds, gradients, parts' shapes, warm-up, real training, bad combinations."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from conftest import make_config
from tfvae import data
from tfvae.models import builder
from tfvae.inference import importance
from tfvae.distributions import priors
from tfvae.models import model as model_lib, nodes as nodes_lib
from tfvae.errors import ConfigError

tfd = tfp.distributions


def _batch(trained, n=200):
    return next(iter(trained["splits"].test.unbatch().batch(n)))


def test_analytic_kl_matches_monte_carlo(trained):
    vae, x = trained["model"], _batch(trained, 50)
    q = vae.encode(x)
    assert vae.analytic_kl
    analytic = vae.rate(q, None).numpy()
    z = q.sample(20000, seed=1)
    log_ratio = (q.log_prob(z) - vae.prior.log_prob(z)).numpy()
    mc, se = log_ratio.mean(0), log_ratio.std(0) / np.sqrt(len(log_ratio))
    assert np.all(np.abs(mc - analytic) < 5 * se + 1e-3), (mc - analytic) / se


def test_elbo_below_importance_sampled_bound_which_rises_with_k(trained):
    vae, x = trained["model"], _batch(trained)
    tf.random.set_seed(0)
    elbo = float(tf.reduce_mean(vae.elbo_terms(x).elbo))
    bounds = {k: float(tf.reduce_mean(vae.log_likelihood(x, k))) for k in (1, 10, 100, 1000)}
    # k = 1 is an unbiased single-sample ELBO estimate; larger k gives a tighter bound.
    assert bounds[1] == pytest.approx(elbo, abs=1.5)
    assert elbo < bounds[10] < bounds[100] < bounds[1000]
    assert bounds[1000] - elbo > 2.0  # a real gap on a model this small


def test_chunked_bound_equals_unchunked(trained):
    vae, x = trained["model"], _batch(trained, 100)
    one_chunk = float(tf.reduce_mean(vae.log_likelihood(x, 2000, chunk_size=2000)))
    many = float(tf.reduce_mean(vae.log_likelihood(x, 2000, chunk_size=37)))  # ragged last chunk
    assert many == pytest.approx(one_chunk, abs=0.3)


def test_log_weights_are_seeded_and_average_to_the_bound(trained):
    """All k log-weights from one traced loop: reproducible from the seed, a ragged k is cut
    to k, and their log-mean-exp is the importance-sampled bound."""
    vae, x = trained["model"], _batch(trained, 50)
    w = vae.log_weights(x, 1003, chunk_size=100, seed=(3, 4))
    assert w.shape == (1003, 50) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(w, vae.log_weights(x, 1003, chunk_size=100, seed=(3, 4)))
    assert not np.array_equal(w, vae.log_weights(x, 1003, chunk_size=100, seed=(3, 5)))
    # Every chunk drew fresh samples: no chunk repeats another's draws. (Single float32
    # log-weights can coincide, ~3e-5 apart near -260; whole chunks of 100 x 50 cannot.)
    chunks = w[:1000].reshape(10, 100 * 50)
    for i in range(10):
        for j in range(i):
            assert not np.array_equal(chunks[i], chunks[j]), (i, j)
            assert np.mean(chunks[i] == chunks[j]) < 0.01, (i, j)
    assert not np.array_equal(w[1000:], w[:3])  # the ragged tail too
    from_weights = np.mean(tf.reduce_logsumexp(w, 0) - np.log(1003.0))
    bound = float(tf.reduce_mean(vae.log_likelihood(x, 1003)))
    assert from_weights == pytest.approx(bound, abs=0.3)


def test_bound_with_5000_samples_fits(trained):
    vae, x = trained["model"], _batch(trained, 100)
    value = vae.log_likelihood(x, 5000)  # default chunking bounds the memory
    assert value.shape == (100,) and np.all(np.isfinite(value))


def test_default_chunks_divide_the_usual_k(trained):
    """No decoder pass is wasted on the masked tail at the usual k, and memory stays bounded."""
    vae = trained["model"]
    for batch in (20, 100, 500):
        chunk = importance.chunk_size(vae, batch)
        assert chunk * batch * 784 <= importance.chunk_outputs() <= 4 * 2 ** 20
        assert all(k % chunk == 0 for k in (1000, 5000)), (batch, chunk)


def test_log_prob_is_the_joint(trained):
    vae, x = trained["model"], _batch(trained, 8)
    z = vae.encode(x).sample(3)
    joint = vae.log_prob(z, x)
    assert joint.shape == (3, 8)
    expected = vae.prior.log_prob(z) + vae.likelihood(z).log_prob(x)
    np.testing.assert_allclose(joint, expected, rtol=1e-6)


def test_shapes_of_the_using_api(trained):
    vae, x = trained["model"], _batch(trained, 8)
    q = vae.encode(x)
    assert q.batch_shape == (8,) and q.event_shape == (vae.latent_dim,)
    samples = vae.sample(5).numpy()
    assert samples.shape == (5, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1
    assert vae.reconstruct(x).shape == (8, 28, 28, 1)
    assert vae.likelihood(q.sample(4)).batch_shape == (4, 8)


def test_training_improves_validation_elbo_on_real_mnist(trained):
    before, after = trained["before"]["elbo"], trained["after"]["elbo"]
    assert after - before > 200, (before, after)   # about -545 -> -173 nats (2 epochs, 12k images)
    assert after > -200
    assert trained["after"]["rate"] > 5           # the latent code is used, not collapsed


def test_gradients_reach_every_encoder_and_decoder_weight(mnist_arrays):
    config = make_config()
    vae = builder.build(config, (28, 28, 1))
    x = tf.cast(mnist_arrays["test"][0][:32] > 127, tf.float32)
    with tf.GradientTape() as tape:
        loss = vae.estimator.terms(vae, x).loss
    grads = tape.gradient(loss, vae.trainable_variables)
    names = [v.name for v in vae.trainable_variables]
    assert any("encoder" in n for n in names) and any("decoder" in n for n in names)
    for v, g in zip(vae.trainable_variables, grads):
        assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, v.name


def test_kl_warmup_ramps_beta_linearly():
    config = make_config(train__kl_warmup_epochs=2.0, train__beta=0.5)
    vae = builder.build(config, (28, 28, 1), steps_per_epoch=50)
    vae.compile(keras.optimizers.Adam())
    assert vae.kl_warmup_steps == 100
    for step, expected in [(0, 0.005), (49, 0.25), (99, 0.5), (500, 0.5)]:
        vae.step.assign(step)
        assert float(vae.current_beta()) == pytest.approx(expected)


def test_num_samples_averages_the_distortion(mnist_arrays):
    config = make_config(model__num_samples=4)
    vae = builder.build(config, (28, 28, 1))
    x = tf.cast(mnist_arrays["test"][0][:16] > 127, tf.float32)
    terms = vae.estimator.terms(vae, x)
    assert terms.elbo.shape == (16,)
    np.testing.assert_allclose(terms.elbo, -(terms.distortion + terms.rate), rtol=1e-6)


def test_continuous_bernoulli_and_cnn_train_without_nans(mnist_arrays):
    config = make_config(data__pixels="continuous", data__train_size=2000, data__image_size=32,
                         model__likelihood__name="continuous_bernoulli", model__network__name="cnn",
                         model__network__conv_channels=(16, 32), model__network__hidden=(64,))
    splits = data.load(config.data, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(1e-3))
    start = vae.evaluate(splits.validation.take(2), verbose=0, return_dict=True)["elbo"]
    history = vae.fit(splits.train, epochs=1, verbose=0).history
    end = vae.evaluate(splits.validation.take(2), verbose=0, return_dict=True)["elbo"]
    assert np.isfinite(history["loss"]).all() and end > start
    # A continuous-Bernoulli density on [0, 1]^D can exceed 1: log-likelihoods may be positive.
    assert np.isfinite(end)


class _MixturePrior(priors.Prior):
    """A prior without a KL registered against a Gaussian (stands in for the prior zoo)."""

    def distribution(self):
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.zeros(2)),
            tfd.Independent(tfd.Normal(tf.constant([[-1.0] * self.latent_dim,
                                                    [1.0] * self.latent_dim]), 1.0), 1))


def test_kl_falls_back_to_monte_carlo_where_tfp_has_none(monkeypatch):
    monkeypatch.setitem(priors.PRIORS._items, "test_mixture", _MixturePrior)
    vae = builder.build(make_config(model__prior__name="test_mixture"), (28, 28, 1))
    assert not vae.analytic_kl
    with pytest.raises(ConfigError, match="registers no KL.*model.kl='auto' or 'mc'"):
        builder.build(make_config(model__prior__name="test_mixture", model__kl="analytic"), (28, 28, 1))


@pytest.mark.parametrize("override, message", [
    ({"model__likelihood__name": "bernoulli", "data__pixels": "continuous"},
     "model.likelihood.name='continuous_bernoulli'"),
    ({"model__prior__name": "uniform"}, "valid priors are: bernoulli, categorical, gtm, gtm_vamp, mog, realnvp, "
     "standard_normal"),
    ({"estimator__name": "magic"}, "valid estimators are: annealed_vae, arm, beta_tcvae, dip_vae_i, "
     "dip_vae_ii, disarm"),
    ({"model__kl": "exact"}, "valid modes are: auto, analytic, mc"),
    ({"model__posterior__scale": "relu"}, "valid scales are: exp, hardtanh_logvar, softplus"),
])
def test_bad_model_config(override, message):
    with pytest.raises(ConfigError, match=message):
        builder.build(make_config(**override), (28, 28, 1))


def test_changing_k_does_not_retrace_the_importance_sampled_bound(trained):
    """k is a tensor and chunks are masked: one traced graph serves every k >= the chunk."""
    vae, x = trained["model"], next(iter(trained["splits"].test))[:20]
    vae.log_likelihood(x, 300, chunk_size=100)
    traces = importance.bound.experimental_get_tracing_count()
    for k in (400, 1000, 257):
        values = vae.log_likelihood(x, k, chunk_size=100)
        assert np.all(np.isfinite(values.numpy()))
    assert importance.bound.experimental_get_tracing_count() == traces


def test_log_likelihood_is_seeded(trained):
    """Every stochastic public method takes a seed: the same seed gives the same bound."""
    vae, x = trained["model"], _batch(trained, 20)
    a = vae.log_likelihood(x, 200, seed=(1, 2)).numpy()
    np.testing.assert_array_equal(a, vae.log_likelihood(x, 200, seed=(1, 2)).numpy())
    assert not np.array_equal(a, vae.log_likelihood(x, 200, seed=(1, 3)).numpy())


def test_eager_likelihood_computes_nothing_it_was_not_asked_for():
    """At a prompt (eagerly), p(x|z) for an evaluation-sized batch of z must not compute its
    mean: for the 256-level discretised logistic that is a [G, B, 28, 28, 1, 256] table (here
    1 GB), which exhausted memory. Asked for a log-prob, it computes the log-prob alone."""
    config = make_config(data__pixels="continuous", model__likelihood__name="discretized_logistic",
                         model__network__hidden=(16,))
    vae = builder.build(config, (28, 28, 1))
    calls = []
    head = type(vae.likelihood_head)
    original = head.pixel_distribution

    def spy(self, logits):
        d = original(self, logits)
        mean = d.mean
        d.mean = lambda *a, **k: calls.append("mean") or mean(*a, **k)
        return d
    head.pixel_distribution = spy
    try:
        z = tf.random.normal([50, 100, 10])
        px = vae.likelihood(z)
        assert px.batch_shape == [50, 100]
        assert calls == []
        assert px.log_prob(tf.zeros([100, 28, 28, 1])).shape == (50, 100)
        assert calls == []
    finally:
        head.pixel_distribution = original


@pytest.mark.parametrize("overrides, names, label_gradient", [
    ({}, ["z"], None),
    ({"model__latent_dims": (4, 3)}, ["z2", "z1"], None),
    ({"model__label": "observed"}, ["y", "z"], "observed"),
    ({"model__label": "latent", "data__labels": "10"}, ["y", "z"], "enumerated"),
    ({"model__label": "latent", "data__labels": "10", "model__label_estimator": "gumbel_softmax"},
     ["y", "z"], "relaxed"),
    ({"model__label": "component", "model__prior__name": "mog",
      "model__prior__components": 10, "data__labels": "10"}, ["y", "z"], "enumerated"),
    ({"model__label": "observed", "model__latent_dims": (4, 3)}, ["y", "z2", "z1"], "observed"),
    ({"estimator__name": "score_function", "estimator__control_variates": "centered,baseline"},
     ["z"], None)])
def test_one_model_class_whose_nodes_the_config_says(overrides, names, label_gradient):
    """Every config builds the one `VAE`; ``model.label`` and ``model.latent_dims`` say its
    nodes, each with its parents and how its gradient is made."""
    config = make_config(model__network__hidden=(8,), **overrides)
    vae = builder.build(config, (28, 28, 1), num_classes=10, num_labelled=100, num_train=1000)
    assert type(vae) is model_lib.VAE
    nodes = vae.nodes
    assert [n.name for n in nodes] == names
    if label_gradient:
        assert nodes[0].gradient == label_gradient
    z = [n for n in nodes if n.name.startswith("z")]
    assert all("x" in n.parents for n in z)
    assert all(("y" in n.parents) == vae.networks_read_labels for n in z)
    assert all(n.parents[1:2] == (f"z{int(n.name[1:]) + 1}",) for n in z[1:])
    if config.estimator.name == "score_function":
        assert z[0].gradient == "score_function"
        assert z[0].detail == "baseline: centered then baseline"
        assert nodes_lib.describe(z[0]) == ("z ~ gaussian | x: score_function "
                                            "(baseline: centered then baseline)")
    else:
        assert all(n.gradient == "reparameterized" and n.reparameterizable for n in z)
    assert len(vae.latent_dims) == len(config.model.latent_dims)
