"""Estimators for discrete codes that use a continuous relaxation (`tfvae.distributions.codes`):
the Concrete / Gumbel-softmax path-wise gradient and its straight-through variant (Jang, Gu and
Poole 2017; Maddison, Mnih and Teh 2017), and RELAX (Grathwohl et al. 2018), whose control
variate is a learned function of the relaxation, so that it stays unbiased for the discrete ELBO.

Temperature (``estimator.temperature``, ``temperature_min``, ``anneal_rate``): at step t,
tau_t = max(tau_min, tau_0 exp(-r t)) (Jang et al.'s schedule); RELAX learns its own, starting
at tau_0.
"""
import math

import tensorflow as tf
import tf_keras as keras

from tfvae.errors import ConfigError
from tfvae.inference.discrete import PerLayer, needs_discrete, learning_signal
from tfvae.inference.estimators import ESTIMATORS, Estimator, Terms, rate_terms


def temperature_at(step, initial: float, minimum: float, rate: float):
    """tau_t = max(tau_min, tau_0 exp(-rate * t))."""
    t = tf.cast(step, tf.float32)
    return tf.maximum(minimum, initial * tf.exp(-rate * t))


def _check_schedule(initial, minimum, rate):
    if not (initial > 0 and minimum > 0 and rate >= 0):
        raise ConfigError(f"estimator.temperature={initial}, temperature_min={minimum}, "
                          f"anneal_rate={rate}: the temperatures must be > 0 and the rate >= 0")


@ESTIMATORS.register("gumbel")
class GumbelSoftmax(Estimator):
    """Path-wise gradient of the relaxed ELBO: each layer's code y_l is a Concrete sample at
    tau_t (y_1 from q(.|x), y_l from q(.|y_{l-1})); loss = mean [D(y) + beta R], with the
    analytic KL of the discrete codes for one layer (Jang et al.), the codes' log masses at y
    for a belief network. Training metrics are of the relaxed codes; evaluation of the
    discrete ones."""

    name_in_config = "gumbel"
    metric_names = ("temperature",)

    def __init__(self, temperature=1.0, temperature_min=0.5, anneal_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_schedule(temperature, temperature_min, anneal_rate)
        self.schedule = (float(temperature), float(temperature_min), float(anneal_rate))

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        return cls(block.temperature, block.temperature_min, block.anneal_rate, name="estimator")

    @property
    def gradient(self):
        t0, t_min, rate = self.schedule
        return ("relaxed", f"{self.name_in_config}, tau {t0:g}" +
                (f" -> {t_min:g} at rate {rate:g}" if rate else ""))

    def check(self, model) -> None:
        needs_discrete(self.name_in_config, model)

    def relaxed_codes(self, model, x, temperature, training):
        """y_1, ..., y_L (a tensor for one layer) from the relaxations, ``[S, B, d_l]``."""
        latents, ys = model.latents, []
        for l in range(latents.num_layers):
            parent = x if l == 0 else ys[-1]
            logits = latents.logits(model, x, l, parent, training)
            soft = latents.codes[l].relaxed_sample(logits, temperature,
                                                   model.num_samples if l == 0 else ())
            ys.append(self.forward_value(latents.codes[l], soft))
        return ys[0] if len(ys) == 1 else tuple(ys)

    @staticmethod
    def forward_value(code, soft):
        return soft

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        tau = temperature_at(model.step, *self.schedule)
        q = model.encode(x, training=training)
        y = self.relaxed_codes(model, x, tau, training)
        log_px = model.likelihood(y, training=training).log_prob(x)
        distortion = -tf.reduce_mean(log_px, 0)
        rate, rates = rate_terms(model, q, y)
        return Terms(loss=tf.reduce_mean(distortion + beta * rate), elbo=-(distortion + rate),
                     distortion=distortion, rate=rate, rates=rates,
                     extras={"temperature": tau})


@ESTIMATORS.register("straight_through")
class StraightThrough(GumbelSoftmax):
    """Straight-through Gumbel-softmax: the forward pass uses the discrete code (the hard value
    of the Concrete sample, itself a sample of q), the backward pass the relaxation's gradient,
    y = sg(hard(y~) - y~) + y~. Biased, with lower variance; its metrics are of the discrete
    codes."""

    name_in_config = "straight_through"

    @staticmethod
    def forward_value(code, soft):
        return tf.stop_gradient(code.hard(soft) - soft) + soft


@ESTIMATORS.register("relax")
class RELAX(PerLayer):
    """RELAX (Grathwohl et al. 2018) for one layer of bits or categories, with REBAR's
    relaxation inside its control variate:

        g = [f(b) - c(z~)] d log q(b) / d l + d c(z) / d l - d c(z~) / d l,
        c(z) = eta f~(soft(z / tau)) + r_rho(x, z),

    z the logistic (Gumbel) perturbed logits, b = H(z), z~ ~ p(z | b); f~ the ELBO's terms at
    the relaxed code (log q at the logits' current value, so that c is one function of z).
    Unbiased for any eta, tau, rho, which minimise mean ||g||^2 (``cv_loss``, the ``baseline``
    group): the variance of the per-logit gradient, not of the parameters' (the authors'), a
    cheaper proxy with the same minimiser when the encoder's Jacobian is fixed."""

    name_in_config = "relax"
    gradient = ("score_function", "RELAX: learned relaxed control variate")
    metric_names = ("cv_loss", "temperature")

    def __init__(self, temperature=0.5, hidden=137, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ConfigError(f"estimator.temperature={temperature} must be > 0")
        self.log_temperature = self.add_weight(
            "log_temperature", [], initializer=keras.initializers.Constant(math.log(temperature)))
        self.eta = self.add_weight("eta", [], initializer="ones")
        self.hidden = int(hidden)

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        return cls(block.temperature, name="estimator")

    def check(self, model) -> None:
        super().check(model)
        if model.latents.num_layers > 1:
            raise ConfigError("estimator.name='relax' takes one discrete layer (its control "
                              "variate would see the layers above as discrete draws); use "
                              "model.latent_dims of one layer, or 'disarm', 'vimco' or 'nvil' "
                              "for a belief network")

    def prepare(self, model) -> None:
        self.control = keras.Sequential([
            keras.layers.InputLayer((math.prod(model.image_shape) + model.latent_dim,)),
            keras.layers.Dense(self.hidden, activation=keras.layers.LeakyReLU(0.3)),
            keras.layers.Dense(1, kernel_initializer="zeros")], name="relax_control")

    def control_variate(self, model, x, q, z, code, logits, beta, training):
        """c(z) ``[S, B]`` with the logits' value held (only z carries their gradient)."""
        tau = tf.exp(self.log_temperature)
        soft = code.soft(z, tau)
        log_px = model.likelihood(soft, training=training).log_prob(x)
        relaxed = log_px + beta * (model.log_prior(soft) -
                                   code.log_mass(tf.stop_gradient(logits), soft))
        flat_x = tf.reshape(x, [tf.shape(x)[0], -1])
        inputs = tf.concat([tf.broadcast_to(flat_x, tf.concat([tf.shape(z)[:-1],
                                                               tf.shape(flat_x)[-1:]], 0)), z], -1)
        lead = tf.shape(inputs)[:-1]
        r = tf.reshape(self.control(tf.reshape(inputs, [-1, inputs.shape[-1]])), lead)
        return self.eta * relaxed + r

    def layer_multiplier(self, model, x, q, base, l, logits, beta, training):
        code = model.latents.codes[l]
        held = tf.broadcast_to(tf.stop_gradient(logits), tf.shape(base[l]))     # [S, B, d]
        u, v = (tf.random.uniform(tf.shape(held), 1e-6, 1 - 1e-6) for _ in range(2))
        with tf.GradientTape() as inner:
            inner.watch(held)
            z, b, z_tilde = code.relax_noise(held, u, v)
            c_z = self.control_variate(model, x, q, z, code, held, beta, training)
            c_tilde = self.control_variate(model, x, q, z_tilde, code, held, beta, training)
            difference = tf.reduce_sum(c_z - c_tilde)
        path = inner.gradient(difference, held)
        f, log_px = learning_signal(model, x, q, b, beta, training)
        # The inference loss stops g; the variance keeps its path to eta, tau and rho.
        g = (tf.stop_gradient(f) - c_tilde)[..., None] * code.score(held, b) + path
        variance = tf.reduce_mean(tf.reduce_sum(tf.square(g), -1))
        return g, f, log_px, b, variance

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        terms = super().terms(model, x, beta, training, update_state)
        return terms._replace(extras={**terms.extras,
                                      "temperature": tf.exp(self.log_temperature)})
