"""The unannotated mixture with a latent component c (``model.label='cluster'``): a categorical
node and a Gaussian node in one model, in the style of GMVAE (Dilokthanakul et al. 2016) and
VaDE (Jiang et al. 2017),

    p(c) = pi,  p(z | c) = N(mu_c, diag sigma_c^2) (the ``mog`` prior's component c),  p(x | z);
    q(c | x) (a classifier network of ``model.network``'s kind),  q(z | x),

with no label anywhere in training. Per image, c summed out exactly (its gradient
enumerated: K prior terms at one z, the decoder once; or, with
``model.label_estimator='score_function'``, two draws of c, each the other's baseline, the
discrete estimators' way; evaluation always sums):

    ELBO(x) = E_q(z|x)[log p(x|z)] - E_q(z|x)[log q(z|x) - sum_c q(c|x) log p(z|c)]
              - KL(q(c|x) || pi),

distortion D the first term, the rate R the other two. Left alone, components die (q(c|x)
puts everything on a few): ``model.cluster_usage_weight`` w adds w KL(q(c) || uniform), q(c)
the batch's mean of q(c|x), which keeps every component in use. The clusters are
argmax_c q(c|x) (`cluster_logits`); ``tfvae.results.structure`` scores them against the
classes where the data has any. The IS log-likelihood is the model's own, with the mixture
prior p(z) = sum_c pi_c p(z|c).
"""
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import precision as precision_lib
from tfvae.errors import ConfigError
from tfvae.inference.estimators import Terms
from tfvae.models import networks, nodes
from tfvae.models.labels import LABELS, NoLabel

tfd = tfp.distributions


# How c's gradient is made (``model.label_estimator``) -> the node's gradient and its words.
GRADIENTS = {"enumerate": ("enumerated", "the mixture's component, summed out"),
             "score_function": ("score_function", "two draws, each the other's baseline")}


def two_draw_score_function(g, logits, seed=None):
    """``(value, surrogate)`` per example of E_q(c|x) g(c) from two draws c_1, c_2 ~ q(c|x):
    the value (g(c_1) + g(c_2)) / 2, unbiased; the surrogate adds
    1/2 sum_s sg(g(c_s) - g(c_other)) log q(c_s|x), whose gradient is REINFORCE
    leave-one-out's (Kool et al. 2019) for q(c|x), path-wise through g for the rest."""
    draws = tf.random.stateless_categorical(logits, 2, seed) if seed is not None else \
        tf.random.categorical(logits, 2)                                  # [B, 2]
    g_s = tf.gather(g, draws, batch_dims=1)                               # [B, 2]
    log_q = tf.gather(tf.nn.log_softmax(logits), draws, batch_dims=1)
    value = tf.reduce_mean(g_s, -1)
    signal = tf.stop_gradient(g_s - g_s[:, ::-1])
    return value, value + 0.5 * tf.reduce_sum(signal * log_q, -1)


@LABELS.register("cluster")
class ClusterLabel(NoLabel):
    """c: the mixture prior's component, latent, with q(c|x) (see the module)."""

    name = "cluster"
    metric_names = ("cluster_usage_kl", "cluster_entropy")

    def __init__(self, num_components: int, *, classifier, usage_weight: float = 0.0,
                 estimator: str = "enumerate"):
        self.num_components = int(num_components)
        self.parts = {"classifier": classifier}
        self.usage_weight = float(usage_weight)
        self.estimator = estimator

    @classmethod
    def check(cls, config, num_classes=0):
        m = config.model
        what = f"model.label={cls.name!r}"
        if m.prior.name != "mog":
            raise ConfigError(f"{what} makes c the component of a mixture prior; model.prior.name="
                              f"{m.prior.name!r} is not one: use 'mog'")
        if len(tuple(m.latent_dims)) != 1 or m.posterior.name != "gaussian":
            raise ConfigError(f"{what} has one Gaussian latent layer z below c; use one "
                              "model.latent_dims and model.posterior.name='gaussian'")
        if config.estimator.name != "reparameterized":
            raise ConfigError(f"{what} sums c out exactly and takes z's path-wise gradient; use "
                              "estimator.name='reparameterized'")
        if m.label_estimator not in GRADIENTS:
            raise ConfigError(f"model.label_estimator={m.label_estimator!r} with {what}: c's "
                              f"gradient is one of {', '.join(GRADIENTS)}")
        if m.cluster_usage_weight < 0:
            raise ConfigError(f"model.cluster_usage_weight={m.cluster_usage_weight} must be >= 0")

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        m = config.model
        with precision_lib.scope(config.train.precision):
            classifier = networks.ENCODERS.create(m.network, image_shape=tuple(image_shape),
                                                  output_size=m.prior.components)
        return cls(m.prior.components, classifier=classifier,
                   usage_weight=m.cluster_usage_weight, estimator=m.label_estimator)

    def node(self):
        return nodes.Node("c", "categorical", ("x",), *GRADIENTS[self.estimator])

    def variables(self, model):
        return model.classifier.trainable_variables

    def cluster_logits(self, model, x, training=None):
        """Logits of q(c | x), ``[B, K]``."""
        return model.classifier(x, training=training)

    def bound(self, model, x, beta=1.0, training=False, seed=None) -> Terms:
        """The ELBO with c summed out, and the loss (rate weighted by ``beta``, the usage
        penalty added)."""
        q = model.encode(x, training=training)
        z = q.sample(model.num_samples, seed=seed)                           # [S, B, L]
        distortion = -tf.reduce_mean(model.likelihood(z, training=training).log_prob(x), 0)
        logits, loc, scale = model.prior.mixture_parameters()
        log_pi = tf.nn.log_softmax(logits)                                   # [K]
        components = tfd.Independent(tfd.Normal(loc, tf.broadcast_to(scale, tf.shape(loc))), 1)
        log_pz_c = components.log_prob(z[..., None, :])                      # [S, B, K]
        c_logits = self.cluster_logits(model, x, training)
        q_c, log_q_c = tf.nn.softmax(c_logits), tf.nn.log_softmax(c_logits)  # [B, K]
        # g(c) = log pi_c + E_S log p(z|c) - log q(c|x): the bound's c-part is E_q(c|x) g(c)
        g = log_pi + tf.reduce_mean(log_pz_c, 0) - log_q_c                   # [B, K]
        if training and self.estimator == "score_function":
            c_part, surrogate = two_draw_score_function(
                g, c_logits, None if seed is None else seed + tf.constant([0, 1], seed.dtype))
        else:
            c_part = surrogate = tf.reduce_sum(q_c * g, -1)
        rate = tf.reduce_mean(q.log_prob(z), 0) - c_part
        usage = tf.reduce_mean(q_c, 0)
        usage_kl = tf.reduce_sum(usage * tf.math.log(usage * self.num_components + 1e-12))
        loss = (tf.reduce_mean(distortion + beta * (rate + c_part - surrogate))
                + self.usage_weight * usage_kl)
        return Terms(loss=loss, elbo=-(distortion + rate), distortion=distortion, rate=rate,
                     rates=(rate,), extras={
                         "cluster_usage_kl": usage_kl,
                         "cluster_entropy": -tf.reduce_mean(tf.reduce_sum(q_c * log_q_c, -1))})

    def training_terms(self, model, data, beta):  # c by `estimator`; evaluation enumerates
        return self.bound(model, keras.utils.unpack_x_y_sample_weight(data)[0], beta,
                          training=True)

    def test_terms(self, model, data):
        return self.bound(model, keras.utils.unpack_x_y_sample_weight(data)[0])

    def elbo_terms(self, model, x, seed=None, labels=None):
        return self.bound(model, x, seed=seed)
