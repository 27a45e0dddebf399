"""Flow posteriors (IAF, RealNVP): the log-density is the base density minus the log-Jacobian (checked by
autodiff), it starts as the identity, its weights learn, and it works in the model and export."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import make_config
from tfvae import model as model_lib, posteriors

tfd = tfp.distributions


def _head(name="iaf", perturb=True, latent=5, context=3):
    """A flow posterior; ``perturb`` moves it away from its identity start."""
    if name == "iaf":
        head = posteriors.IAFPosterior(latent, num_steps=2, hidden=(16,), context=context)
        for g in head.gates:
            g.assign(0.8 if perturb else 0.0)
    else:
        head = posteriors.RealNVPPosterior(latent, num_steps=3, hidden=(16,), context=context)
        rng = np.random.default_rng(0)
        for net in head.nets if perturb else []:
            net.out.kernel.assign(0.3 * rng.standard_normal(net.out.kernel.shape))
    return head


@pytest.mark.parametrize("name", ["iaf", "realnvp"])
def test_log_prob_is_base_minus_log_det_jacobian_by_autodiff(name):
    head = _head(name)
    params = tf.random.stateless_normal([4, 2 * 5 + 3], seed=[1, 2])
    q = head(params)
    base = q.tensor_distribution.distribution
    z0 = base.sample(seed=(3, 4))                                    # [4, 5]
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z = q.tensor_distribution.bijector.forward(z0)
    jac = tape.batch_jacobian(z, z0)                                # [4, 5, 5]
    _, log_det = np.linalg.slogdet(jac.numpy().astype(np.float64))
    expected = base.log_prob(z0).numpy() - log_det
    # A fresh tensor (not the cached sample): log_prob runs the flow's inverse.
    got = q.log_prob(tf.identity(z)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The sample's own log_prob (bijector cache, no inverse) agrees.
    zs = q.sample(seed=(5, 6))
    np.testing.assert_allclose(q.log_prob(zs).numpy(), q.log_prob(tf.identity(zs)).numpy(),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["iaf", "realnvp"])
def test_flow_starts_as_the_identity_and_its_weights_learn(name):
    head = _head(name, perturb=False)
    params = tf.random.stateless_normal([3, 13], seed=[7, 8])
    q = head(params)
    gauss = q.tensor_distribution.distribution
    z = gauss.sample(2, seed=(1, 1))
    np.testing.assert_allclose(q.log_prob(tf.identity(z)), gauss.log_prob(z), atol=1e-5)
    with tf.GradientTape(persistent=True) as tape:
        zs = head(params).sample(seed=(2, 2))
        loss = tf.reduce_sum(head(params).log_prob(tf.identity(zs)) + tf.reduce_sum(zs ** 2))
    grads = tape.gradient(loss, head.trainable_variables)
    assert all(g is not None for g in grads)
    first = head.gates if name == "iaf" else [net.out.kernel for net in head.nets]
    # What starts the flow at the identity (the gates; the zero output layers) moves first.
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in tape.gradient(loss, first))


@pytest.mark.parametrize("name", ["iaf", "realnvp"])
def test_flow_model_trains_scores_and_exports(name, tmp_path):
    import tf_keras as keras
    from tfvae import export
    config = make_config(model__posterior=name, model__hidden=(64,), model__latent_dim=6)
    vae = model_lib.build(config, (28, 28, 1))
    assert not vae.analytic_kl                                       # Monte Carlo KL
    x = (np.random.default_rng(0).random((32, 28, 28, 1)) < 0.3).astype(np.float32)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=1)
    vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), epochs=2, verbose=0)
    ll = vae.log_likelihood(x[:4], 200).numpy()
    elbo = np.mean([vae.elbo_terms(tf.constant(x[:4])).elbo.numpy() for _ in range(32)])
    assert np.all(np.isfinite(ll)) and elbo < np.mean(ll)   # ELBO <= IWAE-200 on average
    assert vae.reconstruct(x[:2]).shape == (2, 28, 28, 1)
    path = export.export(vae, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(path)
    enc = loaded.encode(tf.constant(x[:3]))
    assert enc["loc"].shape == (3, 6) and enc["scale"].shape == (3, 6)
    assert loaded.encode_sample(tf.constant(x[:3]), tf.constant(1, tf.int64))["z"].shape == (3, 6)
