"""How a model whose label y is latent (``model.label='latent'``, M2, `tfvae.models.labels`) trains
on an unlabelled image:
the bound

    U(x) = E_q(y|x)[L(x, y) - log q(y|x)],   L(x, y) = E_q(z|x,y)[log p(x, y, z) - log q(z|x, y)],

and a gradient for the classifier q(y|x), chosen by name (``model.label_estimator``):

| name | y | cost | classifier gradient |
| --- | --- | --- | --- |
| ``enumerate`` | summed out: sum_y q(y|x) L(x, y) + H(q) [1] | K passes | exact in y |
| ``score_function`` | two draws y1, y2 ~ q(y|x), each the other's baseline [2, 3] | 2 passes | unbiased: (r1 - r2) grad log q(y1|x) / 2 + (r2 - r1) grad log q(y2|x) / 2, r = L - log q |
| ``gumbel_softmax`` | a relaxed one-hot draw at temperature T [4] | 1 pass | path-wise through the relaxation: biased, low variance |

Each returns `estimators.Terms` for the batch (``elbo`` an estimate of U(x), unbiased for the
first two; the relaxed bound for the third); evaluation always enumerates.

References:
  [1] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep Generative
      Models. NeurIPS.
  [2] Williams (1992). Simple statistical gradient-following algorithms for connectionist
      reinforcement learning. Machine Learning 8.
  [3] Kool, van Hoof and Welling (2019). Buy 4 REINFORCE Samples, Get a Baseline for Free!
      ICLR Workshop on Deep RL Meets Structured Prediction.
  [4] Jang, Gu and Poole (2017). Categorical Reparameterization with Gumbel-Softmax. ICLR.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.inference import estimators as estimators_lib
from tfvae.registry import Registry

tfd = tfp.distributions

LABEL_ESTIMATORS = Registry("label estimator", field="model.label_estimator")


def _bound_given(model, x, labels, beta, training, seed=None, copies=1):
    """L(x, y) terms (without log p(y)) for labels ``[B]`` or relaxed one-hot ``[B, K]``
    (``copies``: `VAE.given`'s)."""
    return estimators_lib.elbo_decomposition(model.given(labels, copies), x, beta, training, seed)


def _layer_rates(rates_z, kl_y):
    """Each latent layer's share of the rate, bottom first, the label's KL(q(y|x) || p(y))
    counted with the top layer's (y sits at the top of p(y) p(z_L) ...): they sum to R."""
    rates_z = tuple(rates_z)
    return rates_z[:-1] + (rates_z[-1] + kl_y,)


@LABEL_ESTIMATORS.register("enumerate")
def enumerate_labels(model, x, logits, beta=1.0, training=False, seed=None, temperature=0.5):
    """U(x) exactly in y: one batched pass over the K classes (q(z|x,y)'s x path once per
    image, `networks.call_joined`). D = sum_y q(y|x) D(x, y),
    R = sum_y q(y|x) R_z(x, y) + KL(q(y|x) || p(y)); the loss weighs R_z by ``beta``."""
    del temperature
    k, b = model.num_classes, tf.shape(x)[0]
    q_y, log_q_y = tf.nn.softmax(logits), tf.nn.log_softmax(logits)           # [B, K]
    t = _bound_given(model, tf.tile(x, [k, 1, 1, 1]), tf.repeat(tf.range(k), b), beta,
                     training, seed, copies=k)

    def per_class(v):  # [K * B] class-major -> [B, K]
        return tf.transpose(tf.reshape(v, [k, b]))
    distortion = tf.reduce_sum(q_y * per_class(t.distortion), -1)
    rate_z = tf.reduce_sum(q_y * per_class(t.rate), -1)
    kl_y = tf.reduce_sum(q_y * (log_q_y - model.label.log_prior_of_labels()), -1)
    rate = rate_z + kl_y
    rates_z = [tf.reduce_sum(q_y * per_class(r), -1) for r in t.rates or (t.rate,)]
    return estimators_lib.Terms(loss=tf.reduce_mean(distortion + beta * rate_z + kl_y),
                                elbo=-(distortion + rate), distortion=distortion, rate=rate,
                                rates=_layer_rates(rates_z, kl_y))


@LABEL_ESTIMATORS.register("score_function")
def score_function(model, x, logits, beta=1.0, training=False, seed=None, temperature=0.5):
    """Two draws of y per image, each the other's baseline: unbiased and K/2 times cheaper than
    enumerating, at the cost of the score function's variance."""
    del temperature
    q = tfd.Categorical(logits=logits)
    ys = tf.stop_gradient(q.sample(2, seed=seed))                               # [2, B]
    terms = [_bound_given(model, x, ys[i], beta, training) for i in range(2)]
    log_q = [q.log_prob(ys[i]) for i in range(2)]                              # [B] each
    log_p_y = model.label.log_prior_of_labels()
    rewards = [tf.stop_gradient(-(t.distortion + t.rate) + log_p_y - lq)
               for t, lq in zip(terms, log_q)]
    surrogate = 0.0
    for i in range(2):  # the generative and z-inference losses, and the classifier's score term
        t = terms[i]
        surrogate += 0.5 * ((t.distortion + beta * t.rate - log_p_y + log_q[i])
                            - (rewards[i] - rewards[1 - i]) * log_q[i])
    distortion = 0.5 * (terms[0].distortion + terms[1].distortion)
    rate = 0.5 * (terms[0].rate + terms[1].rate - 2 * log_p_y + log_q[0] + log_q[1])
    rates_z = [0.5 * (a + b) for a, b in zip(terms[0].rates or (terms[0].rate,),
                                             terms[1].rates or (terms[1].rate,))]
    kl_y = 0.5 * (log_q[0] + log_q[1]) - log_p_y  # a two-draw estimate of KL(q(y|x) || p(y))
    return estimators_lib.Terms(loss=tf.reduce_mean(surrogate), elbo=-(distortion + rate),
                                distortion=distortion, rate=rate,
                                rates=_layer_rates(rates_z, kl_y))


@LABEL_ESTIMATORS.register("gumbel_softmax")
def gumbel_softmax(model, x, logits, beta=1.0, training=False, seed=None, temperature=0.5):
    """A relaxed one-hot y ~ Concrete(q(y|x), T) into the networks, KL(q(y|x) || p(y)) in
    closed form: one pass, a path-wise gradient for the classifier, biased by the relaxation
    (less as T -> 0, where its variance grows)."""
    relaxed = tfd.RelaxedOneHotCategorical(temperature, logits=logits)
    y = relaxed.sample(seed=seed)                                                # [B, K]
    t = _bound_given(model, x, y, beta, training)
    q_y, log_q_y = tf.nn.softmax(logits), tf.nn.log_softmax(logits)
    kl_y = tf.reduce_sum(q_y * (log_q_y - model.label.log_prior_of_labels()), -1)
    rate = t.rate + kl_y
    return estimators_lib.Terms(loss=tf.reduce_mean(t.distortion + beta * t.rate + kl_y),
                                elbo=-(t.distortion + rate), distortion=t.distortion,
                                rate=rate, rates=_layer_rates(t.rates or (t.rate,), kl_y))
