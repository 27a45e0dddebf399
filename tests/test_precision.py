"""Mixed precision (``train.precision``): networks in float16 / bfloat16, distributions, log-probs
and the loss in float32, dynamic loss scaling for float16 with every optimiser wrapped."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from conftest import make_config
from tfvae.training import validation
from tfvae import precision
from tfvae.models import builder
from tfvae.inference import estimators, gradients
from tfvae.training import optimizers
from tfvae.errors import ConfigError


def _build(prec, **overrides):
    config = make_config(model__network__hidden=(64,), model__latent_dims=(8,), train__precision=prec,
                         **overrides)
    keras.utils.set_random_seed(0)
    vae = builder.build(config, (28, 28, 1))
    default, groups = optimizers.for_training(config.train)
    vae.compile(optimizer=default, group_optimizers=groups, steps_per_execution=4)
    return vae


def _images(mnist_arrays, n):
    x = mnist_arrays["train"][0][:n].astype("float32") / 255.0
    return (x > 0.5).astype("float32")


@pytest.mark.parametrize("prec,network,estimator,cvs", [
    ("mixed_float16", "mlp", "reparameterized", ""),
    ("mixed_float16", "mlp", "iwae", ""),
    ("mixed_float16", "gated_mlp", "score_function", "centered,baseline"),
    ("mixed_bfloat16", "mlp", "dreg", ""),
])
def test_mixed_precision_trains_and_keeps_probabilities_in_float32(mnist_arrays, prec, network,
                                                                    estimator, cvs):
    vae = _build(prec, model__network__name=network, estimator__name=estimator, estimator__control_variates=cvs,
                 model__num_samples=4 if estimator in ("iwae", "dreg") else 1,
                 train__groups__inference__learning_rate=3e-4)
    low = precision.policy(prec).compute_dtype
    # Hidden layers compute in low precision; each network's output layer in float32.
    assert {layer.compute_dtype for layer in vae.encoder.layers[:-2]} == {low}
    assert vae.encoder.get_layer("encoder_out").compute_dtype == "float32"
    assert vae.decoder.get_layer("decoder_out").compute_dtype == "float32"
    assert all(v.dtype == tf.float32 for v in vae.trainable_variables)  # float32 master weights
    wrapped = [vae.optimizer, *vae.group_optimizers.values()]
    assert len(wrapped) == 2                    # the inference group has its own optimiser
    assert all(isinstance(o, keras.mixed_precision.LossScaleOptimizer) == (low == "float16")
               for o in wrapped)
    x = _images(mnist_arrays, 512)
    before = float(tf.reduce_mean(vae.elbo_terms(x[:256], seed=tf.constant([1, 2])).elbo))
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    after = float(tf.reduce_mean(vae.elbo_terms(x[:256], seed=tf.constant([1, 2])).elbo))
    assert after > before + 5, (before, after)   # it learns
    q = vae.encode(x[:8])
    z = q.sample(2)
    for value in (q.sample(), q.log_prob(z), vae.prior.log_prob(z), vae.decode(z),
                  vae.likelihood(z).log_prob(x[:8]), vae.rate(q, z),
                  vae.log_likelihood(x[:8], num_samples=16)):
        assert value.dtype == tf.float32


@pytest.mark.parametrize("network", ["cnn", "gated_mlp"])
def test_every_network_hands_float32_to_the_heads(network):
    """Convolutions in float16 are slow on CPU (no tensor cores), so the CNN is only built and
    run forward here; its arithmetic is the same Keras layers under the same policy."""
    vae = _build("mixed_float16", model__network__name=network)
    assert vae.encoder.layers[0].compute_dtype == "float16"
    assert vae.decoder.layers[0].compute_dtype == "float16"  # hidden layers low, outputs float32
    assert vae.encoder.get_layer("encoder_out").compute_dtype == "float32"
    assert vae.decoder.get_layer("decoder_out").compute_dtype == "float32"
    x = tf.zeros([2, 28, 28, 1])
    assert vae.encoder(x).dtype == vae.decode(vae.encode(x).sample()).dtype == tf.float32


def test_float16_gradients_are_unscaled_and_match_float32(mnist_arrays):
    """The gradient `VAE.gradients` hands the optimiser under mixed_float16 (computed from the
    loss times a loss scale of 2^15, then unscaled) equals the float32 model's gradient to
    float16 rounding; without the unscaling it would be 32,768 times too large."""
    x = _images(mnist_arrays, 64)
    grads = {}
    for prec in ("float32", "mixed_float16"):
        vae = _build(prec)
        if prec == "mixed_float16":
            vae.set_weights(reference.get_weights())
            assert float(vae.optimizer.loss_scale) == 2.0 ** 15
        reference = vae
        with tf.GradientTape(persistent=True) as tape:
            q = vae.encode(x)                   # z at the posterior mean: no sampling noise
            d = -vae.likelihood(q.mean()).log_prob(x)
            loss = tf.reduce_mean(d + vae.rate(q, q.mean()[None]))
            groups = vae.parameter_groups()
            passes = gradients.backward_passes(
                estimators.Terms(loss=loss, elbo=-loss, distortion=d, rate=d), groups,
                vae.optimizers())
        grads[prec] = {g: [gv[0].numpy() for gv in gvs]
                       for g, gvs in gradients.gradients(passes, tape, groups).items()}
    for group, exact in grads["float32"].items():
        for a, b in zip(exact, grads["mixed_float16"][group]):
            assert np.max(np.abs(a - b)) <= 0.02 * np.max(np.abs(a)) + 1e-6, group


def test_unknown_precision_lists_the_valid_ones():
    from tfvae import config as config_lib
    with pytest.raises(ConfigError, match="train.precision='fp8': unknown precision; valid "
                                          "precisions are: auto, float32, mixed_bfloat16, "
                                          "mixed_float16"):
        validation.validate(make_config(train__precision="fp8"))


def test_precision_scope_restores_the_global_policy():
    with precision.scope("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_auto_choices_follow_the_machine(monkeypatch):
    """train.precision='auto' is mixed bfloat16 exactly where the CPU computes bfloat16 (and no
    GPU); train.jit_compile='auto' compiles the dense networks and not the convolutional one on
    CPU, and no network under bfloat16 on CPU (the measured faster choices); true / false from a
    command line are understood."""
    import tensorflow as tf
    from tfvae.training import distribute
    for native in (True, False):
        monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda native=native: native)
        expected = "mixed_bfloat16" if native and not tf.config.list_logical_devices("GPU") \
            else "float32"
        assert precision.resolve("auto") == expected
        assert precision.policy("auto").compute_dtype == expected.replace("mixed_", "")
    strategy = tf.distribute.get_strategy()
    if not tf.config.list_logical_devices("GPU"):
        assert distribute.jit_compile(strategy, "auto", "mlp") is True
        assert distribute.jit_compile(strategy, "auto", "gated_mlp") is True
        assert distribute.jit_compile(strategy, "auto", "cnn") is False
        assert distribute.jit_compile(strategy, "auto", "mlp", precision="mixed_bfloat16") is False
        assert distribute.jit_compile(strategy, "auto", "mlp", precision="mixed_float16") is True
        monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: True)
        assert distribute.jit_compile(strategy, "auto", "mlp", precision="auto") is False
        assert distribute.jit_compile(strategy, True, "mlp", precision="mixed_bfloat16") is True
    assert distribute.jit_compile(strategy, "False", "mlp") is False
    assert distribute.jit_compile(strategy, True, "cnn") is True
    with pytest.raises(ConfigError, match="train.jit_compile='maybe'; use auto"):
        distribute.jit_setting("maybe")
