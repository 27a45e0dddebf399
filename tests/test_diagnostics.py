"""Diagnostics and tfvae-evaluate: Pareto k-hat and ESS against known answers, ELBO surgery's
identities, and the CLI on finished and interrupted runs."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from commands import command
from conftest import make_config
from tfvae.models import builder
from tfvae.inference import diagnostics
from tfvae.training import runs

tfd = tfp.distributions


@pytest.mark.parametrize("alpha", [2.0, 1.25])
def test_khat_recovers_the_tail_shape_of_pareto_weights(alpha):
    """Weights with a Pareto(alpha) tail have generalised-Pareto shape 1 / alpha."""
    rng = np.random.default_rng(0)
    w = rng.pareto(alpha, size=(5000, 40)) + 1.0
    khat = diagnostics.pareto_khat(np.log(w))
    assert np.median(khat) == pytest.approx(1.0 / alpha, abs=0.1)


def _linear_gaussian(scale_factor, k=4000, seed=0):
    """log-weights for z ~ N(0, I_2), x | z ~ N(W z, 0.5^2 I_6) with q = the exact posterior
    N(mu, Sigma) whose covariance is scaled by ``scale_factor`` (1 = exact)."""
    rng = np.random.default_rng(seed)
    w_mat = rng.normal(size=(6, 2))
    sigma2 = 0.25
    x = w_mat @ rng.normal(size=2) + 0.5 * rng.normal(size=6)
    cov = np.linalg.inv(np.eye(2) + w_mat.T @ w_mat / sigma2)
    mu = cov @ w_mat.T @ x / sigma2
    q = tfd.MultivariateNormalTriL(mu, np.linalg.cholesky(scale_factor * cov))
    z = q.sample(k, seed=(seed, 1))
    prior = tfd.MultivariateNormalDiag(tf.zeros(2, tf.float64))
    lik = tfd.MultivariateNormalDiag(tf.linalg.matvec(tf.constant(w_mat), z), 0.5 * tf.ones(6, tf.float64))
    log_w = prior.log_prob(z) + lik.log_prob(x) - q.log_prob(z)
    evidence = tfd.MultivariateNormalFullCovariance(
        tf.zeros(6, tf.float64), w_mat @ w_mat.T + sigma2 * np.eye(6)).log_prob(x)
    return log_w.numpy()[:, None], float(evidence)


def test_ess_is_k_for_the_true_posterior_and_drops_for_a_bad_one():
    log_w, evidence = _linear_gaussian(1.0)
    found = diagnostics.weight_diagnostics(log_w)
    assert found["ess"][0] == pytest.approx(4000, rel=1e-9)       # every weight equal
    assert found["log_likelihood"][0] == pytest.approx(evidence, abs=1e-9)
    narrow = diagnostics.weight_diagnostics(_linear_gaussian(0.1)[0])
    assert narrow["ess_fraction"][0] < 0.3 and narrow["khat"][0] > diagnostics.KHAT_THRESHOLD
    wide = diagnostics.weight_diagnostics(_linear_gaussian(3.0)[0])
    assert wide["ess_fraction"][0] > 0.3 and wide["khat"][0] < 0.5  # bounded weights


def test_elbo_surgery_adds_up_and_bounds_the_information(trained):
    images = np.concatenate([b.numpy() for b in trained["splits"].test.take(2)])[:1000]
    s = diagnostics.elbo_surgery(trained["model"], images, seed=5)
    info, marginal = s["mutual_information"], s["marginal_kl"]
    assert info["mean"] + marginal["mean"] == pytest.approx(s["rate_one_sample"]["mean"], abs=1e-3)
    se = np.hypot(s["rate"]["se"], s["rate_one_sample"]["se"])
    assert abs(s["rate_one_sample"]["mean"] - s["rate"]["mean"]) < 4 * se  # unbiased for R
    assert 0 < info["mean"] <= s["max_mutual_information"] + 1e-6 and marginal["mean"] > 0


def test_marginal_kl_is_zero_when_the_prior_is_the_aggregated_posterior():
    """A VampPrior whose pseudo-inputs are the evaluated images is exactly q(z)."""
    config = make_config(model__prior__name="vamp", model__prior__components=40,
                         model__prior__pseudo_inputs="hardtanh", model__latent_dims=(6,),
                         model__network__hidden=(32,))
    images = (np.random.default_rng(0).random((40, 28, 28, 1)) < 0.3).astype(np.float32)
    vae = builder.build(config, (28, 28, 1), train_images=images)
    vae.prior.raw_pseudo_inputs.assign(images)
    s = diagnostics.elbo_surgery(vae, images, seed=1)
    assert abs(s["marginal_kl"]["mean"]) < 1e-4
    assert s["mutual_information"]["mean"] == pytest.approx(s["rate_one_sample"]["mean"], abs=1e-4)


@pytest.mark.slow
def test_evaluate_cli_matches_the_api_and_seeds_are_independent(tiny_run, tmp_path):
    cmd = [*command("evaluate"), f"--workdir={tiny_run}",
           "--iw_samples=200", "--examples=60", "--seed=3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "log p(x) >= (k=200, n=60)" in out.stdout and "+-" in out.stdout
    assert "log p(x), k=200: 60/60 images" in out.stderr and "images/s" in out.stderr
    assert "best checkpoint (epoch" in out.stderr
    with open(os.path.join(tiny_run, "evaluation.json")) as f:
        cli = json.load(f)
    api = runs.evaluate_run(tiny_run, iw_samples=200, examples=60, seed=3, progress=None)
    assert cli["seed"] == api["seed"] == 3
    assert cli["log_likelihood"]["mean"] == pytest.approx(api["log_likelihood"]["mean"], abs=1e-4)
    assert cli["elbo"]["mean"] == pytest.approx(api["elbo"]["mean"], abs=1e-4)
    other = runs.evaluate_run(tiny_run, iw_samples=200, examples=60, seed=4, progress=None)
    assert other["log_likelihood"]["mean"] != api["log_likelihood"]["mean"]
    for key in ("elbo", "distortion", "rate", "log_likelihood"):
        assert api[key]["se"] > 0
    w = api["importance_weights"]
    assert 0 < w["ess_fraction_p5"] <= w["ess_fraction_mean"] <= 1
    assert api["elbo"]["mean"] < api["log_likelihood"]["mean"]


def test_interrupted_run_evaluates_from_its_backup(tiny_run, tmp_path):
    workdir = str(tmp_path / "interrupted")
    shutil.copytree(tiny_run, workdir)
    for name in ("results.json", "evaluation.json"):
        if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))
    shutil.rmtree(os.path.join(workdir, "checkpoints"))  # killed before any best was written
    result = runs.evaluate_run(workdir, split="validation", iw_samples=20, examples=30, seed=0,
                          progress=None)
    assert result["weights"].startswith("training backup") and result["num_examples"] == 30
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has
    out = subprocess.run([*command("evaluate"),
                          f"--workdir={tmp_path / 'nothing'}"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("tfvae-evaluate: error: --workdir=")
    assert "holds no run" in out.stderr and "Traceback" not in out.stderr


def test_collapsed_dimensions_for_standard_and_mixture_priors():
    """A latent dimension the encoder ignores (mean 0, scale 1) has KL 0 to a standard normal
    prior, and KL 0 to a mixture prior whose marginal in that dimension is N(0, 1)."""
    for prior, extra in (("standard_normal", {}), ("mog", {"model__prior__components": 5})):
        config = make_config(model__prior__name=prior, model__latent_dims=(3,), model__network__hidden=(16,),
                             **extra)
        vae = builder.build(config, (28, 28, 1))
        out = vae.encoder.layers[-1]
        kernel, bias = out.kernel.numpy(), out.bias.numpy()
        kernel[:, [2, 5]] = 0.0                         # dimension 2: loc 0, raw scale 0 ...
        bias[2], bias[5] = 0.0, np.log(np.expm1(1.0))    # ... softplus(raw) = 1
        out.kernel.assign(kernel)
        out.bias.assign(bias)
        if prior == "mog":
            locs = vae.prior.locs.numpy()
            locs[:, 2] = 0.0
            vae.prior.locs.assign(locs)
            raw = vae.prior.raw_scales.numpy()
            raw[:, 2] = np.log(np.expm1(1.0 - 1e-4))
            vae.prior.raw_scales.assign(raw)
        images = np.random.default_rng(0).random((50, 28, 28, 1)).astype(np.float32)
        assert diagnostics.collapsed_dimensions(vae, tf.constant(images)) >= 1
        assert diagnostics.collapsed_dimensions(vae, tf.constant(images), threshold=-1) == 0
