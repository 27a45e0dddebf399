"""Faults and bad data: combinations of parts that used to crash mid-training, data that must be
refused at the source, workdirs that cannot be read, a full disk, two processes on one
workdir. Each ends in one line that names the problem and the fix, and loses nothing saved."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import make_config
from tfvae import builder, train

tfd = tfp.distributions


def tiny_config(fashion_idx_dir, **overrides):
    """A run of seconds on the FashionMNIST sample: 512 training images, latent 4."""
    base = dict(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=200,
                data__validation_size=200, data__train_size=512, data__pixels="binary",
                model__latent_dims=(4,), model__network__hidden=(32,), train__epochs=1,
                eval__iw_samples=5, eval__iw_examples=50, eval__plots=False)
    return make_config(**{**base, **overrides})


# ---------------------------------------------------------------------- parts that crashed
@pytest.mark.parametrize("posterior", ["iaf", "realnvp"])
def test_a_vampprior_of_flow_posteriors_is_the_mixture_of_its_components(posterior):
    """p(z) = 1/K sum_k q(z | u_k) with q a flow: the prior's log-density equals the mixture
    computed component by component (each pseudo-input encoded alone), for z with sample and
    batch axes; before, TFP's mixture handed the flow z[..., None, :] against K contexts and
    the first training step failed with a shape error."""
    config = make_config(model__prior__name="vamp", model__prior__components=3,
                         model__posterior__name=posterior, model__latent_dims=(4,),
                         model__network__hidden=(16,))
    vae = builder.build(config, (28, 28, 1))
    z = tf.random.stateless_normal([2, 5, 4], seed=[1, 2])
    got = vae.prior.log_prob(z).numpy()
    u = vae.prior.pseudo_inputs()
    per_component = np.stack([
        vae.posterior_head.distribution(vae.encoder(u[k:k + 1])).log_prob(z[..., None, :])[..., 0]
        for k in range(3)], -1)
    want = tf.reduce_logsumexp(per_component, -1).numpy() - np.log(3.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.shape == (2, 5)


@pytest.mark.parametrize("overrides", [
    {"model__prior__name": "vamp", "model__prior__components": 5, "model__posterior__name": "iaf"},
    {"model__prior__name": "mog", "model__prior__components": 10,
     "model__prior__annotated": True, "data__labels": "10"}],
    ids=["vamp_iaf", "annotated_with_validation"])
def test_combinations_that_crashed_mid_training_train_and_evaluate(tmp_path, fashion_idx_dir,
                                                                     overrides):
    """A VampPrior over an IAF posterior, and an annotated mixture with a validation split
    (whose test step had no labels), train an epoch and evaluate."""
    results = train.train_and_evaluate(tiny_config(fashion_idx_dir, **overrides),
                                       str(tmp_path / "run"), verbose=0)
    assert np.isfinite(results["test"]["elbo"]["mean"])
    assert np.isfinite(results["validation"]["elbo"]["mean"])
    if "data__labels" in overrides:
        assert 0.0 <= results["validation"]["classification_error"]["mean"] <= 1.0
