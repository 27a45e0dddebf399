"""The unannotated mixture with a latent component c (``model.label='cluster'``): a categorical
node and a Gaussian node in one model, in the style of GMVAE (Dilokthanakul et al. 2016) and
VaDE (Jiang et al. 2017),

    p(c) = pi,  p(z | c) = N(mu_c, diag sigma_c^2) (the ``mog`` prior's component c),  p(x | z);
    q(c | x) (a classifier network of ``model.network``'s kind),  q(z | x),

with no label anywhere in training. Per image, c summed out exactly (its gradient
enumerated: K prior terms at one z, the decoder once):

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


@LABELS.register("cluster")
class ClusterLabel(NoLabel):
    """c: the mixture prior's component, latent, with q(c|x) (see the module)."""

    name = "cluster"
    metric_names = ("cluster_usage_kl", "cluster_entropy")

    def __init__(self, num_components: int, *, classifier, usage_weight: float = 0.0):
        self.num_components = int(num_components)
        self.parts = {"classifier": classifier}
        self.usage_weight = float(usage_weight)

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
        if m.cluster_usage_weight < 0:
            raise ConfigError(f"model.cluster_usage_weight={m.cluster_usage_weight} must be >= 0")

    @classmethod
    def from_config(cls, config, *, image_shape, num_classes=0, num_labelled=0, num_train=0):
        m = config.model
        with precision_lib.scope(config.train.precision):
            classifier = networks.ENCODERS.create(m.network, image_shape=tuple(image_shape),
                                                  output_size=m.prior.components)
        return cls(m.prior.components, classifier=classifier,
                   usage_weight=m.cluster_usage_weight)

    def node(self):
        return nodes.Node("c", "categorical", ("x",), "enumerated",
                          "the mixture's component, summed out")

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
        rate_z = tf.reduce_mean(q.log_prob(z) - tf.reduce_sum(q_c * log_pz_c, -1), 0)
        kl_c = tf.reduce_sum(q_c * (log_q_c - log_pi), -1)
        rate = rate_z + kl_c
        usage = tf.reduce_mean(q_c, 0)
        usage_kl = tf.reduce_sum(usage * tf.math.log(usage * self.num_components + 1e-12))
        loss = tf.reduce_mean(distortion + beta * rate) + self.usage_weight * usage_kl
        return Terms(loss=loss, elbo=-(distortion + rate), distortion=distortion, rate=rate,
                     rates=(rate,), extras={
                         "cluster_usage_kl": usage_kl,
                         "cluster_entropy": -tf.reduce_mean(tf.reduce_sum(q_c * log_q_c, -1))})

    def training_terms(self, model, data, beta):
        return self.bound(model, keras.utils.unpack_x_y_sample_weight(data)[0], beta,
                          training=True)

    def test_terms(self, model, data):
        return self.bound(model, keras.utils.unpack_x_y_sample_weight(data)[0])

    def elbo_terms(self, model, x, seed=None, labels=None):
        return self.bound(model, x, seed=seed)
