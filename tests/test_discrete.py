"""Discrete codes: each estimator's defining property on codes small enough to enumerate.

The exact gradient of the ELBO is the ``enumerate`` estimator's (a sum over every code); every
unbiased estimator's mean gradient must equal it within its standard error, along the exact
gradient's direction and two random ones (|z| < 4.5 each: with ~60 such checks a false alarm
has probability < 0.1%). VIMCO is checked against the exact gradient of the k-sample bound, the
Gumbel-softmax against the exact gradient of its relaxed objective (by quadrature).
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfvae.config import get_config
from tfvae.errors import ConfigError
from tfvae.inference import enumeration, estimators, variance
from tfvae.models import builder

pytestmark = pytest.mark.slow

DRAWS, REPLICAS, Z_MAX = 300, 40, 4.5


def make_model(family="bernoulli", dims=(8,), classes=2, hidden=(16,), estimator="enumerate",
               num_samples=1, seed=0):
    tf.random.set_seed(seed)
    c = get_config()
    c.model.posterior.name = family
    c.model.prior.name = family if family != "gaussian" else "standard_normal"
    c.model.posterior.classes = classes
    c.model.latent_dims = dims
    c.model.network.hidden = hidden
    c.model.num_samples = num_samples
    c.estimator.name = estimator
    model = builder.build(c, (6, 6, 1))
    # Non-zero prior logits and decoder biases, so that nothing is symmetric by accident.
    model.prior.logits.assign(tf.random.normal(model.prior.logits.shape, seed=seed + 1))
    return model


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant((rng.random((n, 6, 6, 1)) < 0.4).astype("float32"))


def estimator_for(model, name, **kwargs):
    c = get_config().estimator
    c.name = name
    c.update(kwargs)
    est = estimators.build(c)
    est.check(model)
    est.prepare(model)
    return est


def flat_gradient(model, loss_fn):
    variables = model.parameter_groups()["inference"]
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, variables)], 0)


def sampled_gradients(model, est, x, draws=DRAWS):
    """``draws`` estimates of the inference gradient, each the mean of REPLICAS independent
    ones (the batch repeated)."""
    xs = tf.tile(x, [REPLICAS, 1, 1, 1])

    @tf.function
    def one():
        def loss():
            terms = est.terms(model, xs, update_state=False)
            return terms.group_losses.get("inference", terms.loss) * len(x)

        return flat_gradient(model, loss)

    return np.stack([one().numpy() for _ in range(draws)])


def exact_gradient(model, x):
    return flat_gradient(model, lambda: enumeration.exact_terms(model, x)[-1] * len(x)).numpy()


def assert_unbiased(samples, exact, label):
    rng = np.random.default_rng(1)
    directions = [exact / np.linalg.norm(exact)] + [
        d / np.linalg.norm(d) for d in rng.normal(size=(2, exact.size))]
    for i, d in enumerate(directions):
        proj = samples @ d
        se = proj.std(ddof=1) / math.sqrt(len(proj))
        z = (proj.mean() - exact @ d) / se
        assert abs(z) < Z_MAX, (f"{label}: direction {i}: mean {proj.mean():.4g} vs exact "
                                f"{exact @ d:.4g} (se {se:.3g}, z {z:.1f})")


UNBIASED = [
    ("bernoulli", (8,), 2, "reinforce", 1),
    ("bernoulli", (8,), 2, "nvil", 1),
    ("bernoulli", (8,), 2, "rloo", 3),
    ("bernoulli", (8,), 2, "arm", 1),
    ("bernoulli", (8,), 2, "disarm", 1),
    ("bernoulli", (8,), 2, "relax", 1),
    ("categorical", (12,), 4, "reinforce", 1),
    ("categorical", (12,), 4, "rloo", 2),
    ("categorical", (12,), 4, "relax", 1),
    ("bernoulli", (4, 3), 2, "disarm", 1),
    ("bernoulli", (4, 3), 2, "arm", 1),
    ("bernoulli", (4, 3), 2, "rloo", 2),
]


@pytest.mark.parametrize("family,dims,classes,name,k", UNBIASED,
                         ids=[f"{f}{'x'.join(map(str, d))}-{n}" for f, d, _, n, _ in UNBIASED])
def test_mean_gradient_is_the_exact_gradient(family, dims, classes, name, k):
    model = make_model(family, dims, classes, num_samples=k)
    x = images()
    exact = exact_gradient(model, x)
    est = estimator_for(model, name, temperature=0.5)
    assert_unbiased(sampled_gradients(model, est, x), exact, name)


def test_the_check_detects_a_biased_gradient():
    """The same check refuses straight-through's biased gradient (so it can fail)."""
    model = make_model()
    x = images()
    exact = exact_gradient(model, x)
    est = estimator_for(model, "straight_through", temperature=1.0, temperature_min=1.0)
    with pytest.raises(AssertionError):
        assert_unbiased(sampled_gradients(model, est, x), exact, "straight_through")


def test_disarm_has_no_more_variance_than_arm():
    model = make_model()
    x = images()
    arm = sampled_gradients(model, estimator_for(model, "arm"), x, draws=400)
    disarm = sampled_gradients(model, estimator_for(model, "disarm"), x, draws=400)
    # Per logit a theorem (Dong et al. 2020, eq. 9); summed, measured here at 0.8 +- 0.1.
    assert disarm.var(0).sum() < 0.95 * arm.var(0).sum()


def test_vimco_is_unbiased_for_the_k_sample_bound():
    model = make_model(num_samples=2)
    x = images()
    support = model.latents.support()

    def exact_bound():  # E_{b, b' ~ q} [log (w(b) + w(b')) / 2], summed over the pairs
        q = model.encode(x)
        log_px, log_pz, log_q = enumeration._log_joint_and_q(model, x, q, support)
        log_w = log_px + log_pz - log_q                                        # [N, B]
        a, b = log_w[:, None], log_w[None, :]
        top = tf.maximum(a, b)
        pair = top + tf.math.log(tf.exp(a - top) + tf.exp(b - top)) - math.log(2.0)  # [N, N, B]
        weight = tf.exp(log_q[:, None] + log_q[None, :])
        return -tf.reduce_sum(weight * pair)

    exact = flat_gradient(model, exact_bound).numpy()
    est = estimator_for(model, "vimco")
    assert_unbiased(sampled_gradients(model, est, x), exact, "vimco")


def test_gumbel_softmax_is_unbiased_for_its_relaxed_objective():
    model = make_model(dims=(2,))
    x = images()
    tau = 0.7
    grid = (np.arange(200) + 0.5) / 200
    u = tf.constant(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 1, 2), tf.float32)

    def relaxed_objective():  # sum_b [ E_u log p(x | y(u)) - KL(q || p) ], by quadrature
        q = model.encode(x)
        logits = model.latents.logits(model, x, 0, x)
        y = tf.sigmoid((logits + tf.math.log(u) - tf.math.log1p(-u)) / tau)     # [G, B, 2]
        log_px = tf.reduce_mean(model.likelihood(y).log_prob(x), 0)
        return -tf.reduce_sum(log_px - model.rate(q, None))

    exact = flat_gradient(model, relaxed_objective).numpy()
    est = estimator_for(model, "gumbel", temperature=tau, temperature_min=tau)
    assert_unbiased(sampled_gradients(model, est, x), exact, "gumbel")


def test_exact_log_likelihood_and_posterior():
    model = make_model()
    x = images()
    exact = enumeration.log_marginal(model, x, chunk=64).numpy()
    log_w = model.log_weights(x, 20000, seed=(3, 4)).astype(np.float64)   # [k, B]
    m = log_w.max(0)
    w = np.exp(log_w - m)
    estimate = m + np.log(w.mean(0))
    se = w.std(0, ddof=1) / (w.mean(0) * math.sqrt(len(w)))
    assert np.all(np.abs(estimate - exact) < 4.5 * se + 1e-4), (estimate, exact, se)
    post = enumeration.posterior(model, x).numpy()                            # [B, N]
    np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-5)
    z = model.latents.support()[:, None, :]
    log_joint = (model.likelihood(z).log_prob(x) + model.log_prior(z)).numpy().T
    np.testing.assert_allclose(np.log(post), log_joint - exact[:, None], atol=1e-3)
    # The ELBO is below log p(x) by KL(q || p(b|x)) >= 0.
    assert np.all(enumeration.exact_terms(model, x)[0].numpy() <= exact + 1e-4)


@pytest.mark.parametrize("family,classes,name,message", [
    ("categorical", 4, "arm", "binary codes"),
    ("categorical", 4, "disarm", "binary codes"),
    ("bernoulli", 2, "reparameterized", "reparameterisable"),
])
def test_impossible_combinations_are_refused(family, classes, name, message):
    with pytest.raises(ConfigError, match=message):
        make_model(family, (12,), classes, estimator=name)


def test_large_codes_relax_and_vimco_limits_are_refused():
    with pytest.raises(ConfigError, match="too large|at most 4096"):
        make_model(dims=(40,), estimator="enumerate")
    with pytest.raises(ConfigError, match="one discrete layer"):
        make_model(dims=(4, 3), estimator="relax")
    with pytest.raises(ConfigError, match="num_samples >= 2"):
        make_model(estimator="vimco")
    with pytest.raises(ConfigError, match="continuous"):
        make_model("gaussian", estimator="disarm")


def test_gradient_variance_is_zero_for_the_exact_gradient_only():
    model = make_model(estimator="disarm")
    x = images()
    others, skipped = variance.comparison_estimators(
        model, get_config().estimator, ["enumerate", "rloo", "arm", "disarm"])
    assert not skipped and others["rloo"][1].num_samples == 2  # rloo sees 2 samples
    v = {name: variance.gradient_variance(model, x, est, 30, view=view)
         for name, (est, view) in others.items()}
    assert v["enumerate"]["variance"] < 1e-9 * v["arm"]["variance"]
    assert v["rloo"]["variance"] > 0 and v["disarm"]["variance"] < v["arm"]["variance"]
