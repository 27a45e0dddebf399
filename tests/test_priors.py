"""The prior zoo: normalised densities, moments, gradients, the flow's change of variables,
serialisation with the model, training on real MNIST, and clear errors."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from conftest import make_config
from tfvae import data
from tfvae.models import builder
from tfvae.distributions import priors
from tfvae.errors import ConfigError

ALL = ["standard_normal", "mog", "vamp", "gtm", "gtm_vamp", "realnvp"]
LEARNABLE = ALL[1:]


def _model(prior, latent_dim=2, **overrides):
    settings = dict(model__prior__name=prior, model__latent_dims=(latent_dim,), model__network__hidden=(64,),
                    model__prior__components=16, model__prior__hidden=(32,))
    config = make_config(**(settings | overrides))
    keras.utils.set_random_seed(1)
    images = np.random.default_rng(0).random((32, 28, 28, 1)).astype(np.float32)
    return builder.build(config, (28, 28, 1), train_images=images)


def _grid(extent=9.0, n=601):
    axis = np.linspace(-extent, extent, n, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    return np.stack([gx.ravel(), gy.ravel()], -1), (axis[1] - axis[0]) ** 2


def _perturb(prior):
    """Moves learnable priors away from their (often symmetric) initial values."""
    rng = np.random.default_rng(2)
    for v in prior.trainable_variables:
        v.assign(v + 0.3 * rng.standard_normal(v.shape).astype(np.float32))


@pytest.mark.parametrize("name", ALL)
def test_density_integrates_to_one_and_matches_sample_moments(name):
    prior = _model(name).prior
    _perturb(prior)
    points, cell = _grid()
    density = np.exp(prior.log_prob(points).numpy().astype(np.float64))
    assert density.sum() * cell == pytest.approx(1.0, abs=0.01)
    # Mean and covariance by quadrature agree with those of samples (a sampler/density mismatch,
    # e.g. a wrong log-det-Jacobian or mixture weight, breaks this).
    mean = (density[:, None] * points).sum(0) * cell
    centred = points - mean
    cov = (density[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0) * cell
    samples = prior.sample(200000, seed=3).numpy().astype(np.float64)
    se = np.sqrt(np.diag(cov) / len(samples))
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * se + 1e-3)
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=0.03 * np.abs(cov).max() + 1e-3)


def test_mixture_moments_are_the_closed_form():
    prior = _model("mog", latent_dim=3).prior
    _perturb(prior)
    d = prior.distribution()
    w = tf.nn.softmax(prior.logits).numpy()
    mu = prior.locs.numpy()
    var = (tf.nn.softplus(prior.raw_scales).numpy() + priors.MIN_SCALE) ** 2
    mean = w @ mu
    second = w @ (var + mu ** 2)
    np.testing.assert_allclose(d.mean(), mean, rtol=1e-5)
    np.testing.assert_allclose(d.variance(), second - mean ** 2, rtol=1e-4)


@pytest.mark.parametrize("name, own", [
    ("mog", ["logits", "locs", "raw_scales"]),
    ("vamp", ["raw_pseudo_inputs"]),
    ("gtm", ["gtm_net"]),
    ("gtm_vamp", ["gtm_vamp_net"]),
    ("realnvp", ["coupling0", "coupling3"]),
])
def test_gradients_reach_the_priors_own_variables(name, own):
    vae = _model(name, latent_dim=4)
    z = tf.random.normal([64, 4], seed=0)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(vae.prior.log_prob(z))
    variables = vae.prior.trainable_variables
    grads = tape.gradient(loss, variables)
    for key in own:
        hits = [(v, g) for v, g in zip(variables, grads) if key in v.name]
        assert hits, f"no variable named like {key!r} in {[v.name for v in variables]}"
        assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for _, g in hits), key
    # The model's trainable variables include the prior's: the optimiser will update them.
    model_vars = {id(v) for v in vae.trainable_variables}
    assert all(id(v) in model_vars for v in variables)
    if name in ("vamp", "gtm_vamp"):  # the encoder learns from the prior term too
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(vae.prior.log_prob(z))
        grads = tape.gradient(loss, vae.encoder.trainable_variables)
        assert all(g is not None for g in grads)


def test_flow_log_prob_is_base_log_prob_minus_log_det_jacobian():
    prior = _model("realnvp", latent_dim=6).prior
    _perturb(prior)
    bijector = prior.bijector()
    x = prior.base().sample(500, seed=4)
    z = bijector.forward(x)
    expected = prior.base().log_prob(x) - bijector.forward_log_det_jacobian(x, event_ndims=1)
    np.testing.assert_allclose(prior.log_prob(z), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bijector.inverse(z), x, atol=1e-4)
    assert float(tf.reduce_max(tf.abs(z - x))) > 0.05  # the perturbed flow is not the identity


@pytest.mark.parametrize("name", LEARNABLE)
def test_prior_is_saved_and_restored_with_the_model(name, tmp_path):
    vae = _model(name, latent_dim=4)
    _perturb(vae.prior)
    z = tf.random.normal([10, 4], seed=5)
    before = vae.prior.log_prob(z).numpy()
    vae.save_weights(str(tmp_path / "w"))
    fresh = _model(name, latent_dim=4)
    assert not np.allclose(fresh.prior.log_prob(z), before)
    fresh.load_weights(str(tmp_path / "w"))
    np.testing.assert_allclose(fresh.prior.log_prob(z), before, rtol=1e-5)


@pytest.mark.parametrize("name", LEARNABLE)
def test_kl_is_monte_carlo_for_learnable_priors(name):
    assert not _model(name, latent_dim=4).analytic_kl
    assert _model("standard_normal").analytic_kl


def test_vamp_pseudo_inputs_start_at_data_and_stay_in_range():
    images = (np.random.default_rng(0).random((8, 28, 28, 1)) > 0.5).astype(np.float32)
    prior = priors.VampPrior(4, 8, lambda x: None, (28, 28, 1), init="data",
                             train_images=images)
    u = prior.pseudo_inputs().numpy()
    assert u.min() >= 0.0 and u.max() <= 1.0
    # Each pseudo-input is one of the training images (squashed into [0.05, 0.95]).
    assert all(np.isclose(np.abs(ui - (0.05 + 0.9 * images)).reshape(8, -1).max(1), 0,
                          atol=1e-5).any() for ui in u)
    prior.raw_pseudo_inputs.assign(prior.raw_pseudo_inputs * 100)
    u = prior.pseudo_inputs().numpy()
    assert u.min() >= 0.0 and u.max() <= 1.0


@pytest.fixture(scope="module")
def prior_runs(mnist_arrays):
    """Each prior trained with the same short budget on real dynamically binarised MNIST."""
    results = {}
    for name in ALL:
        config = make_config(model__prior__name=name, model__latent_dims=(8,), model__prior__components=16,
                             data__train_size=6000, data__validation_size=1000)
        splits = data.load(config.data, seed=0, arrays=mnist_arrays)
        keras.utils.set_random_seed(0)
        first = next(iter(splits.train))[:64].numpy()
        vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                            train_images=first)
        vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=8)
        history = vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch,
                          epochs=3, verbose=0).history
        results[name] = (history, vae.evaluate(splits.validation, verbose=0, return_dict=True))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_each_prior_trains_on_mnist_without_nans(prior_runs, name):
    history, val = prior_runs[name]
    assert np.isfinite(history["loss"]).all()
    assert history["elbo"][-1] > history["elbo"][0] + 20
    assert val["elbo"] > -200


@pytest.fixture(scope="module")
def refitted_priors(trained):
    """Each learnable prior fitted to the aggregated posterior of a trained standard-prior VAE:
    encoder and decoder are copied and frozen, so D is identical and only p(z) learns. With q
    fixed, R = E_x KL(q(z|x) || p(z)) = const - E_q(z) log p(z): fitting p(z) must lower R."""
    base, splits = trained["model"], trained["splits"]
    out = {"standard_normal": base.evaluate(splits.validation, verbose=0, return_dict=True)}
    first = next(iter(splits.train))[:64].numpy()
    for name in LEARNABLE:
        config = trained["config"].copy_and_resolve_references()
        config.model.prior.name, config.model.prior.components = name, 16
        keras.utils.set_random_seed(0)
        vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                            train_images=first)
        vae.encoder.set_weights(base.encoder.get_weights())
        vae.decoder.set_weights(base.decoder.get_weights())
        vae.encoder.trainable = vae.decoder.trainable = False
        vae.compile(keras.optimizers.Adam(3e-3), steps_per_execution=16)
        start = vae.evaluate(splits.validation, verbose=0, return_dict=True)
        vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch, epochs=2, verbose=0)
        out[name] = (start, vae.evaluate(splits.validation, verbose=0, return_dict=True))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNABLE)
def test_fitting_a_learnable_prior_lowers_the_rate_at_the_same_distortion(refitted_priors, name):
    standard = refitted_priors["standard_normal"]
    start, end = refitted_priors[name]
    assert end["distortion"] == pytest.approx(standard["distortion"], abs=0.5)  # D unchanged
    assert end["rate"] < start["rate"] - 0.5, (start["rate"], end["rate"])
    if name in ("mog", "gtm", "realnvp"):
        # Flexible densities beat N(0, I) at matching the aggregated posterior within 2 epochs
        # (measured ~7.8, 7.6, 6.7 vs 9.1 nats). A VampPrior of only 16 narrow posteriors needs
        # more pseudo-inputs or steps to get there (see the prior comparison in the README).
        assert end["rate"] < standard["rate"] - 0.5, (end["rate"], standard["rate"])


@pytest.mark.parametrize("override, message", [
    ({"model__prior__name": "laplace"},
     "valid priors are: bernoulli, categorical, gtm, gtm_vamp, mog, realnvp, standard_normal, vamp"),
    ({"model__prior__name": "mog", "model__prior__components": 0}, "prior.components=0 must be >= 1"),
    ({"model__prior__name": "vamp", "model__prior__components": 0}, "prior.components=0 must be >= 1"),
    ({"model__prior__name": "gtm", "model__prior__components": 10}, "not a square number.*9 or 16"),
    ({"model__prior__name": "gtm_vamp", "model__prior__components": 12}, "not a square number"),
    ({"model__prior__name": "realnvp", "model__latent_dims": (5,)}, "5 dimensions, an odd"),
    ({"model__prior__name": "realnvp", "model__prior__flow_layers": 0}, "flow_layers=0 must be >= 1"),
    ({"model__prior__name": "vamp", "model__prior__init": "zeros"}, "valid inits are: data, noise"),
])
def test_bad_prior_config(override, message):
    config = make_config(**override)
    with pytest.raises(ConfigError, match=message):
        builder.build(config, (28, 28, 1))


@pytest.mark.parametrize("name", ["mog", "vamp", "gtm", "gtm_vamp"])
def test_fast_mixture_log_prob_equals_tfp_mixture_same_family(name):
    """The matmul fast path against TFP's MixtureSameFamily, K = 500 in 40 dimensions, at
    points near the components and far from them, value and gradient."""
    vae = _model(name, latent_dim=40, model__prior__components=484 if name.startswith("gtm") else 500)
    _perturb(vae.prior)
    prior = vae.prior
    assert prior.mixture_parameters() is not None
    rng = np.random.default_rng(3)
    z = tf.constant(np.concatenate([prior.sample(60, seed=4).numpy(),
                                    3 * rng.standard_normal((40, 40))]).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        fast = prior.log_prob(z)
        reference = prior.distribution().log_prob(z)
    np.testing.assert_allclose(fast, reference, rtol=2e-6, atol=1e-4)
    for a, b in zip(tape.gradient(fast, [z] + prior.trainable_variables),
                    tape.gradient(reference, [z] + prior.trainable_variables)):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * float(np.abs(b).max()))


def test_fast_mixture_log_prob_stays_exact_at_tiny_scales():
    """Scales near the 1e-4 floor make the matmul expansion cancel large terms; the directly
    recomputed leading components keep the value at float32 accuracy."""
    rng = np.random.default_rng(5)
    loc = tf.constant(2 * rng.standard_normal((500, 40)), tf.float32)
    scale = tf.constant(rng.uniform(1e-4, 1e-3, (500, 40)), tf.float32)
    logits = tf.constant(rng.standard_normal(500), tf.float32)
    idx = rng.integers(0, 500, 100)
    z = tf.gather(loc, idx) + tf.gather(scale, idx) * rng.standard_normal((100, 40)).astype("f")
    reference = tfp.distributions.MixtureSameFamily(
        tfp.distributions.Categorical(logits=logits),
        tfp.distributions.Independent(tfp.distributions.Normal(loc, scale), 1)).log_prob(z)
    fast = priors.diagonal_gaussian_mixture_log_prob(z, logits, loc, scale)
    np.testing.assert_allclose(fast, reference, rtol=1e-4)
