"""The VampPrior paper's protocol: gated network, hardtanh clamps, AdamNormGrad, its config."""
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import REPO, TFDS_DIR, make_config
from tfvae.training import validation
from tfvae import data
from tfvae.models import builder, networks
from tfvae.training import optimizers
from tfvae.distributions import posteriors, priors
from tfvae.errors import ConfigError


def _literature(arg):
    path = os.path.join(REPO, "configs", "literature.py")
    spec = importlib.util.spec_from_file_location("literature_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_gated_dense_is_linear_times_sigmoid_gate():
    layer = networks.GatedDense(5)
    x = tf.random.normal([4, 3])
    h = layer(x)
    kernel, bias = layer.dense.kernel, layer.dense.bias
    linear = x @ kernel[:, :5] + bias[:5]
    gate = tf.sigmoid(x @ kernel[:, 5:] + bias[5:])
    np.testing.assert_allclose(h, linear * gate, rtol=1e-5, atol=1e-6)
    # He initialisation: weights ~ N(0, 2 / fan_in), different in each layer.
    big = networks.GatedDense(400)
    big.build((None, 800))
    other = networks.GatedDense(400)
    other.build((None, 800))
    w = big.dense.kernel.numpy()
    assert np.std(w) == pytest.approx(np.sqrt(2 / 800), rel=0.02)
    assert abs(np.mean(w)) < 2e-3 and np.abs(w).max() > 4 * np.sqrt(2 / 800)  # not truncated
    assert not np.allclose(w, other.dense.kernel.numpy())


def test_gated_network_gradients_reach_every_weight():
    config = make_config(model__network__name="gated_mlp", model__network__hidden=(30, 20), model__latent_dims=(4,))
    encoder, decoder = networks.build(config.model, (28, 28, 1), 8)
    x = tf.random.uniform((6, 28, 28, 1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(decoder(encoder(x)[:, :4]) ** 2)
    variables = encoder.trainable_variables + decoder.trainable_variables
    assert len(variables) == 2 * 2 + 2 + 2 * 2 + 2      # gated layers hold one 2x-wide dense
    grads = tape.gradient(loss, variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_hardtanh_logvar_clamps_the_variance_to_e_minus_6_to_e_2():
    head = posteriors.GaussianPosterior(3, scale="hardtanh_logvar")
    raw = tf.constant([[0.0, 0.0, 0.0, -10.0, 1.0, 10.0]])
    np.testing.assert_allclose(head(raw).variance().numpy()[0], np.exp([-6.0, 1.0, 2.0]),
                               rtol=1e-4)
    raw_scale = tf.constant([-10.0, 1.0, 10.0])
    with tf.GradientTape() as tape:
        tape.watch(raw_scale)
        total = tf.reduce_sum(posteriors.SCALE_FUNCTIONS["hardtanh_logvar"](raw_scale))
    grad = tape.gradient(total, raw_scale).numpy()
    assert grad[0] == 0 and grad[2] == 0 and grad[1] > 0  # hardtanh stops the gradient outside


def test_adam_normgrad_is_adam_on_unit_norm_gradients():
    grad = tf.constant([[3.0, -4.0], [0.0, 12.0]])
    a, b = tf.Variable(tf.ones([2, 2])), tf.Variable(tf.ones([2, 2]))
    normgrad = optimizers.make("adam_normgrad", 0.1)
    adam = keras.optimizers.Adam(0.1, epsilon=1e-8)
    for scale in (1.0, 100.0):  # the step does not depend on the gradient's scale
        normgrad.apply_gradients([(scale * grad, a)])
        adam.apply_gradients([(grad / (tf.norm(grad) + 1e-7), b)])
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)  # float32 round-off
    with pytest.raises(ConfigError, match=r"train.optimizer='adamw2': unknown optimizer"):
        validation.validate(make_config(train__optimizer="adamw2"))


def test_vamp_hardtanh_pseudo_inputs_start_as_the_authors_code():
    prior = priors.VampPrior(4, 500, posterior_fn=lambda u: None, image_shape=(28, 28, 1),
                             init="noise", parametrization="hardtanh")
    u = prior.pseudo_inputs().numpy()
    assert u.shape == (500, 28, 28, 1) and u.min() >= 0 and u.max() <= 1
    assert np.mean(u) == pytest.approx(0.05, abs=1e-3) and np.std(u) == pytest.approx(0.01, abs=1e-3)
    with pytest.raises(ConfigError, match="model.prior.pseudo_inputs='tanh'"):
        priors.VampPrior(4, 5, lambda u: None, (28, 28, 1), parametrization="tanh")


@pytest.mark.parametrize("prior", ["standard", "vamp", "mog"])
def test_protocol_config_splits_and_model(prior, mnist_arrays):
    config = _literature(f"mnist,{prior}")
    config.data.data_dir, config.data.download = TFDS_DIR, False
    validation.validate(config)
    splits = data.load(config.data, seed=0, arrays=mnist_arrays)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (50000, 10000, 10000)
    assert splits.steps_per_epoch == 500
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        train_images=next(iter(splits.train))[:64])
    assert vae.kl_warmup_steps == 100 * 500
    # The authors' network: 1,116,864 weights without the prior's.
    prior_vars = {id(v) for v in vae.prior.trainable_variables}
    own = sum(int(np.prod(v.shape)) for v in vae.trainable_variables if id(v) not in prior_vars)
    assert own == 1116864
    if prior != "standard":
        assert vae.prior.num_components == 500
    with pytest.raises(ConfigError, match=r"literature.py:mnist,flow: expected DATASET,PRIOR"):
        _literature("mnist,flow")


def test_last_validation_split_takes_the_last_images_in_order(mnist_arrays):
    config = make_config(data__validation_size=10000, data__validation_split="last",
                         data__pixels="continuous")
    splits = data.load(config.data, seed=0, arrays=mnist_arrays)
    val = np.concatenate([b.numpy() for b in splits.validation])
    expected = mnist_arrays["train"][0][-10000:].astype(np.float32) / 255.0
    np.testing.assert_allclose(val, expected, atol=1e-6)
