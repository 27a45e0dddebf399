"""Gradient estimators: unbiasedness, control variates' effect on variance, multi-sample
objectives, per-group optimisers, diagnostics, real training, and clear errors."""
import csv
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import make_config
from tfvae.training import validation
from tfvae import data
from tfvae.models import builder
from tfvae.training import train
from tfvae.errors import ConfigError


def _tiny(estimator="reparameterized", control_variates="", **overrides):
    """A tiny VAE on 4x4 binary images: cheap enough to average 10^5 gradient estimates."""
    config = make_config(estimator__name=estimator, estimator__control_variates=control_variates,
                         model__latent_dims=(2,), model__network__hidden=(8,), **overrides)
    keras.utils.set_random_seed(0)
    return builder.build(config, (4, 4, 1))


def _copy(src, dst):
    dst.encoder.set_weights(src.encoder.get_weights())
    dst.decoder.set_weights(src.decoder.get_weights())


X4 = tf.constant(np.random.default_rng(0).random((3, 4, 4, 1)) < 0.5, tf.float32)


def _inference_grad(vae, x, update_state=False):
    variables = vae.parameter_groups()["inference"]
    with tf.GradientTape() as tape:
        terms = vae.estimator.terms(vae, x, update_state=update_state)
        loss = terms.group_losses.get("inference", terms.loss)
    return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, variables)], 0).numpy()


def _mean_gradient(vae, copies=20000, repeats=8):
    """Mean and standard error of the inference gradient: each call averages ``copies``
    independent estimates (the batch holds each image ``copies`` times), ``repeats`` calls."""
    x = tf.repeat(X4, copies, axis=0)
    fn = tf.function(lambda: _inference_grad_graph(vae, x))
    g = np.stack([fn().numpy() for _ in range(repeats)])
    return g.mean(0), g.std(0, ddof=1) / np.sqrt(repeats)


def _inference_grad_graph(vae, x):
    variables = vae.parameter_groups()["inference"]
    with tf.GradientTape() as tape:
        terms = vae.estimator.terms(vae, x, update_state=False)
        loss = terms.group_losses.get("inference", terms.loss)
    return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, variables)], 0)


def _prime(vae, steps=30):
    """Moves control-variate state off its initial values with real reward statistics."""
    x = tf.repeat(X4, 50, axis=0)
    for _ in range(steps):
        vae.estimator.terms(vae, x, update_state=True)


@pytest.fixture(scope="module")
def reparam_gradient():
    return _mean_gradient(_tiny(), repeats=8)


@pytest.mark.parametrize("cvs", ["", "centered", "scaled", "self_critic", "baseline",
                                 "centered,scaled,self_critic,baseline"])
def test_score_function_gradient_is_unbiased(reparam_gradient, cvs):
    vae = _tiny("score_function", cvs)
    _copy(_tiny(), vae)
    _prime(vae)
    mean, se = _mean_gradient(vae)
    if "scaled" in cvs:  # scaling rescales the gradient by a known factor: undo it to compare
        mean, se = [a * float(vae.estimator.control_variates[cvs.split(",").index("scaled")]
                              .scale()) for a in (mean, se)]
    ref, ref_se = reparam_gradient
    z = np.abs(mean - ref) / np.sqrt(se ** 2 + ref_se ** 2 + 1e-12)
    assert np.max(z) < 5.0, (np.max(z), np.abs(mean - ref).max())
    assert np.abs(ref).max() > 10 * np.sqrt(ref_se ** 2 + se ** 2).max()  # the test has power


def test_scaling_divides_the_inference_gradient_by_a_known_positive_factor():
    plain, scaled = _tiny("score_function"), _tiny("score_function", "scaled")
    _copy(plain, scaled)
    cv = scaled.estimator.control_variates[0]
    cv.ema_mean.assign(0.0)
    cv.ema_sq.assign(49.0 * (1 - 0.99 ** 100))  # bias-corrected second moment 49: std 7
    cv.count.assign(100.0)
    assert float(cv.scale()) == pytest.approx(7.0)
    tf.random.set_seed(3)
    g_plain = _inference_grad(plain, X4)
    tf.random.set_seed(3)
    g_scaled = _inference_grad(scaled, X4)
    np.testing.assert_allclose(g_scaled * 7.0, g_plain, rtol=1e-4, atol=1e-6)


def _flow_kwargs(posterior):
    if posterior == "gaussian":
        return {}
    return {"model__posterior__name": posterior, "model__posterior__flow_hidden": (8,),
            "model__posterior__context": 4}


def _perturb_flow(vae):
    """Moves a flow posterior off its identity start (random output layers, masks kept)."""
    rng = np.random.default_rng(1)
    for layer in vae.posterior_head.submodules:
        if isinstance(layer, keras.layers.Dense) and not np.any(layer.kernel.numpy()):
            noise = 0.5 * rng.standard_normal(layer.kernel.shape).astype("float32")
            layer.kernel.assign(layer.kernel_constraint(noise) if layer.kernel_constraint
                                else noise)


@pytest.mark.slow
@pytest.mark.parametrize("posterior", ["gaussian", "iaf", "realnvp"])
def test_dreg_and_iwae_inference_gradients_agree_in_expectation(posterior):
    """DReG is unbiased for the IWAE bound's inference gradient, flows included (their own
    weights are held fixed in log q through the path-only log-density)."""
    iwae = _tiny("iwae", model__num_samples=4, **_flow_kwargs(posterior))
    dreg = _tiny("dreg", model__num_samples=4, **_flow_kwargs(posterior))
    _perturb_flow(iwae)
    _copy(iwae, dreg)
    dreg.posterior_head.set_weights(iwae.posterior_head.get_weights())
    # A MADE's masked-out weights stay zero (its kernel constraint): their gradients are of a
    # function that is not the flow's density, and never applied; compare the others.
    free = np.concatenate([
        np.reshape(v.constraint(tf.ones_like(v)) != 0 if v.constraint else np.ones(v.shape), -1)
        for v in dreg.parameter_groups()["inference"]]).astype(bool)
    mean_i, se_i = (a[free] for a in _mean_gradient(iwae, copies=20000, repeats=8))
    mean_d, se_d = (a[free] for a in _mean_gradient(dreg, copies=20000, repeats=8))
    z = np.abs(mean_i - mean_d) / np.sqrt(se_i ** 2 + se_d ** 2 + 1e-12)
    assert np.max(z) < 5.0
    assert np.abs(mean_i).max() > 10 * np.sqrt(se_i ** 2 + se_d ** 2).max()  # the test has power


# ------------------------------------------------------------------ on real MNIST
def _variance(vae, x, repeats=24):
    fn = tf.function(lambda: _inference_grad_graph(vae, x))
    g = np.stack([fn().numpy() for _ in range(repeats)])
    return float(g.var(0, ddof=1).sum())


@pytest.fixture(scope="module")
def variances(trained):
    """Inference-gradient variance on a fixed batch of real images for each control variate,
    with the encoder and decoder of a VAE trained for 2 epochs; state warmed up on 60 batches."""
    base, splits = trained["model"], trained["splits"]
    x = next(iter(splits.validation))[:100]
    batches = list(splits.train.take(60))
    out = {}
    for cvs in ["", "centered", "scaled", "self_critic", "baseline"]:
        config = trained["config"].copy_and_resolve_references()
        config.estimator.name, config.estimator.control_variates = "score_function", cvs
        vae = builder.build(config, splits.image_shape)
        _copy(base, vae)
        if cvs == "baseline":  # train the baseline network alone on the reward
            opt = keras.optimizers.Adam(3e-3)
            step = tf.function(lambda b: _baseline_step(vae, b, opt))
            for b in batches * 3:
                step(b)
        else:
            for b in batches:
                vae.estimator.terms(vae, b, update_state=True)
        out[cvs or "none"] = _variance(vae, x)
    return out


def _baseline_step(vae, x, optimizer):
    variables = vae.parameter_groups()["baseline"]
    with tf.GradientTape() as tape:
        terms = vae.estimator.terms(vae, x, update_state=True)
    optimizer.apply_gradients(zip(tape.gradient(terms.extras["cv_loss"], variables), variables))


@pytest.mark.slow
@pytest.mark.parametrize("cv", ["centered", "scaled", "self_critic", "baseline"])
def test_each_control_variate_lowers_gradient_variance(variances, cv):
    assert variances[cv] < 0.5 * variances["none"], variances


def _fit(config, mnist_arrays, epochs=1, group_optimizers=None, lr=1e-3):
    splits = data.load(config.data, seed=0, arrays=mnist_arrays)
    keras.utils.set_random_seed(0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(lr), group_optimizers=group_optimizers,
                steps_per_execution=16)
    start = vae.evaluate(splits.validation, verbose=0, return_dict=True)
    vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch, epochs=epochs,
            verbose=0)
    return vae, splits, start, vae.evaluate(splits.validation, verbose=0, return_dict=True)


@pytest.mark.slow
def test_score_function_with_baseline_improves_validation_elbo(mnist_arrays):
    config = make_config(estimator__name="score_function", estimator__control_variates="centered,baseline",
                         data__train_size=12000)
    groups = {"inference": keras.optimizers.RMSprop(3e-4),
              "baseline": keras.optimizers.Adam(1e-3)}
    vae, _, start, end = _fit(config, mnist_arrays, epochs=2, group_optimizers=groups)
    assert end["elbo"] > start["elbo"] + 200, (start["elbo"], end["elbo"])  # ~ -545 -> ~ -220
    assert np.isfinite(end["elbo"])


@pytest.mark.slow
def test_iwae_objective_gives_a_tighter_importance_sampled_bound(mnist_arrays):
    results = {}
    for name, k in (("reparameterized", 1), ("iwae", 5)):
        config = make_config(estimator__name=name, model__num_samples=k, data__train_size=12000)
        vae, splits, _, _ = _fit(config, mnist_arrays, epochs=2)
        x = next(iter(splits.test.unbatch().batch(500)))
        tf.random.set_seed(0)
        results[name] = float(tf.reduce_mean(vae.log_likelihood(x, 500)))
    assert results["iwae"] > results["reparameterized"], results


@pytest.mark.parametrize("estimator, extra", [
    ("score_function", {"model__posterior__reparameterize": False}),
    ("reparameterized", {"model__posterior__reparameterize": True}),
    ("hybrid", {"estimator__control_variates": "centered"}),
])
def test_mixture_posterior_trains_three_ways(mnist_arrays, estimator, extra):
    config = make_config(estimator__name=estimator, model__posterior__name="mog",
                         model__posterior__components=3, data__train_size=3000, **extra)
    vae, _, start, end = _fit(config, mnist_arrays, epochs=1)
    assert not vae.analytic_kl
    assert np.isfinite(end["elbo"]) and end["elbo"] > start["elbo"] + 50


def test_group_optimizers_update_only_their_group():
    vae = _tiny()
    frozen = keras.optimizers.SGD(0.0)
    vae.compile(keras.optimizers.Adam(1e-2), group_optimizers={"inference": frozen})
    enc, dec = vae.encoder.get_weights(), vae.decoder.get_weights()
    vae.fit(tf.data.Dataset.from_tensors(X4).repeat(), steps_per_epoch=5, epochs=1, verbose=0)
    for a, b in zip(enc, vae.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)          # lr 0: the inference group did not move
    assert any(not np.array_equal(a, b) for a, b in zip(dec, vae.decoder.get_weights()))
    assert int(frozen.iterations) == 5


@pytest.mark.slow
def test_gradient_variance_and_cv_loss_are_logged(tmp_path, fashion_idx_dir):
    config = make_config(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=500,
                         data__validation_size=500, data__train_size=1024,
                         data__pixels="binary", train__epochs=2, eval__iw_samples=10,
                         eval__iw_examples=50, eval__plots=False, eval__grad_variance_repeats=4,
                         estimator__name="score_function", estimator__control_variates="centered,baseline")
    config.train.groups.inference.optimizer = "rmsprop"
    config.train.groups.inference.learning_rate = 3e-4
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir, verbose=0)
    rows = list(csv.DictReader(open(os.path.join(workdir, "metrics.csv"))))
    assert len(rows) == 2
    for row in rows:
        assert float(row["grad_variance"]) > 0 and np.isfinite(float(row["cv_loss"]))
        # cv_loss is a training quantity: evaluation reports the ELBO, not a val_cv_loss of 0
        assert np.isfinite(float(row["val_elbo"])) and "val_cv_loss" not in row


@pytest.mark.parametrize("override, message", [
    ({"estimator__name": "magic"}, "valid estimators are: annealed_vae, arm, beta_tcvae, "
                             "dip_vae_i, dip_vae_ii, disarm, dreg, enumerate, factor_vae, "
                             "gumbel, hybrid, info_vae, iwae, nvil, reinforce, relax, "
                             "reparameterized, rloo, score_function, straight_through, vimco"),
    ({"estimator__name": "score_function", "estimator__control_variates": "centered,magic"},
     "valid control variates are: baseline, centered, scaled, self_critic"),
    ({"estimator__name": "reparameterized", "estimator__control_variates": "baseline"},
     "only apply to score-function estimators"),
    ({"estimator__name": "reparameterized", "model__posterior__name": "mog",
      "model__posterior__reparameterize": False}, "needs a reparameterisable posterior"),
    ({"estimator__name": "dreg", "model__posterior__name": "mog",
      "model__posterior__reparameterize": False}, "needs a reparameterisable posterior"),
    ({"estimator__name": "hybrid"}, "needs a mixture posterior"),
    ({"model__posterior__name": "mog", "model__posterior__components": 0},
     "posterior.components=0 must be >= 1"),
])
def test_bad_estimator_config(override, message):
    with pytest.raises(ConfigError, match=message):
        builder.build(make_config(**override), (28, 28, 1))


def test_bad_group_settings():
    config = make_config()
    config.train.groups.inference.optimizer = "lbfgs"
    with pytest.raises(ConfigError, match="train.groups.inference.optimizer='lbfgs'"):
        validation.validate(config)
    vae = _tiny()
    with pytest.raises(ConfigError, match="unknown parameter groups \\['encoder'\\]"):
        vae.compile(keras.optimizers.Adam(), group_optimizers={"encoder": keras.optimizers.Adam()})
