"""Objectives and their gradient estimators, chosen by name (``config.estimator``).

An estimator maps ``(model, x, beta)`` to `Terms`: a surrogate loss whose gradient is the
estimator's gradient, and the per-example ELBO decomposition

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) = -(D + R),

with distortion ``D = -E_q log p(x|z)`` and rate ``R = KL(q||p)`` (analytic where TFP registers
the KL, else the Monte Carlo estimate ``mean_s [log q(z_s|x) - log p(z_s)]``). The model does not
know which estimator it has: it asks for terms and applies each parameter group's gradient
(``generative``: decoder and prior; ``inference``: encoder; ``baseline``: control variates) with
that group's optimiser.

| name | gradient |
| --- | --- |
| ``reparameterized`` | path-wise: z = mu + sigma * eps (needs a reparameterisable q) |
| ``score_function`` | REINFORCE: (r - control variates) * grad log q(z|x), any q |
| ``hybrid`` | mixture q: score function for the component, path-wise within it |
| ``iwae`` | importance-weighted bound with k = ``model.num_samples`` (Burda et al., 2016) |
| ``dreg`` | IWAE with the doubly-reparameterised inference gradient (Tucker et al., 2019) |

Estimators are Keras layers so their state (running reward statistics, a baseline network) is
tracked, trained and checkpointed with the model.

References:
  [1] Kingma and Welling (2014). Auto-Encoding Variational Bayes. ICLR.
  [2] Williams (1992). Simple statistical gradient-following algorithms for connectionist
      reinforcement learning. Machine Learning 8.
  [3] Mnih and Gregor (2014). Neural Variational Inference and Learning in Belief Networks. ICML.
  [4] Burda, Grosse and Salakhutdinov (2016). Importance Weighted Autoencoders. ICLR.
  [5] Tucker, Lawson, Gu and Maddison (2019). Doubly Reparameterized Gradient Estimators for
      Monte Carlo Objectives. ICLR.
"""
from typing import Dict, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd = tfp.distributions

ESTIMATORS = Registry("estimator", field="estimator.name")
CONTROL_VARIATES = Registry("control variate", field="estimator.control_variates")
GROUPS = ("generative", "inference", "baseline")


class Terms(NamedTuple):
    """Output of an estimator. ``loss`` is a scalar surrogate (applied to every parameter group
    unless ``group_losses`` gives a group its own); ``elbo``, ``distortion``, ``rate`` are per
    example ``[B]``; ``rates`` each latent layer's share of ``rate``, bottom first; ``extras``
    are scalars to track (e.g. ``cv_loss``, ``iwae``)."""

    loss: tf.Tensor
    elbo: tf.Tensor
    distortion: tf.Tensor
    rate: tf.Tensor
    group_losses: Dict[str, tf.Tensor] = {}
    extras: Dict[str, tf.Tensor] = {}
    rates: tuple = ()


class Estimator(keras.layers.Layer):
    """Base class. ``check(model)`` rejects combinations that cannot work, at build time;
    ``metric_names`` lists the ``extras`` it reports (the model tracks them)."""

    metric_names: Sequence[str] = ()
    # How it takes the latent nodes' gradients (`tfvae.models.nodes.Node.gradient`), and in words.
    gradient = ("reparameterized", "path-wise")

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        """The estimator from its config block (``config.estimator``); ``context`` (the
        data's ``num_train``) for the objectives that need it."""
        control_variates(block)  # none, unless the estimator is a score-function one
        return cls(name="estimator")

    def check(self, model) -> None:
        pass

    def prepare(self, model) -> None:
        """Creates the estimator's variables (e.g. a baseline network) once the model exists."""

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        raise NotImplementedError

    def call(self, inputs):  # estimators are used through `terms`
        raise TypeError("use estimator.terms(model, x, ...)")


def _needs_reparameterization(name, model):
    """Every latent node z must be reparameterisable (`tfvae.models.nodes`)."""
    if not all(node.reparameterizable for node in model.nodes if node.name.startswith("z")):
        if getattr(model.latents, "codes", None):
            raise ConfigError(
                f"estimator {name!r} needs a reparameterisable posterior, and a discrete code "
                f"(model.posterior.name={model.posterior_name!r}) is not; use one of the discrete "
                "estimators: reinforce, nvil, rloo, vimco, arm, disarm, relax, gumbel, "
                "straight_through, enumerate")
        raise ConfigError(
            f"estimator {name!r} needs a reparameterisable posterior, but model.posterior.name="
            f"{model.posterior_name!r} is not (for 'mog', set model.posterior.reparameterize="
            "True for implicit reparameterisation); or choose estimator='score_function' or "
            "'hybrid'")


def _log_joint_terms(model, x, z, q, training):
    """log p(x|z), log p(z), log q(z|x), each ``[S, B]``."""
    log_px = model.likelihood(z, training=training).log_prob(x)
    return log_px, model.log_prior(z), q.log_prob(z)


def stop_gradient(z):
    """`tf.stop_gradient` of a latent or a structure of latent layers."""
    return tf.nest.map_structure(tf.stop_gradient, z)


def rate_terms(model, q, z):
    """``(rate, rates)``: the rate per example ``[B]`` and its per-layer parts (bottom first)."""
    rates = tuple(model.rates(q, z))
    return (rates[0] if len(rates) == 1 else tf.add_n(rates)), rates


def elbo_decomposition(model, x, beta=1.0, training=False, seed=None) -> Terms:
    """ELBO = -(D + R) per example with ``S = model.num_samples`` samples z ~ q(z|x), and the
    beta-weighted loss mean(D + beta R); path-wise differentiable where q is reparameterisable.
    ``seed``: a stateless seed (shape [2]) for the draw, else the global random state."""
    q = model.encode(x, training=training)
    z = q.sample(model.num_samples, seed=seed)                       # [S, B, L]
    log_px = model.likelihood(z, training=training).log_prob(x)     # [S, B]
    distortion = -tf.reduce_mean(log_px, axis=0)
    rate, rates = rate_terms(model, q, z)
    return Terms(loss=tf.reduce_mean(distortion + beta * rate),
                 elbo=-(distortion + rate), distortion=distortion, rate=rate, rates=rates)


@ESTIMATORS.register("reparameterized")
class Reparameterized(Estimator):
    """Path-wise gradient of the (beta-weighted) ELBO with ``S = model.num_samples`` samples

        loss = mean_b [ D_b + beta * R_b ],   D_b ~= -1/S sum_s log p(x_b | z_s),
        z_s = mu(x_b) + sigma(x_b) * eps_s  (the reparameterisation trick).
    """

    def check(self, model) -> None:
        _needs_reparameterization("reparameterized", model)

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        return elbo_decomposition(model, x, beta, training)


# ------------------------------------------------------------------ control variates
class ControlVariateContext(NamedTuple):
    """What a control variate may look at: the batch, its posterior and a fresh-reward maker."""

    x: tf.Tensor
    fresh_reward: callable  # () -> an independent reward sample [S, B] (no gradient)


class ControlVariate(keras.layers.Layer):
    """Transforms the score-function reward r [S, B]. ``apply`` is pure (state as it stands);
    ``update`` moves the state with this batch and returns a loss for trainable parts (or 0).
    Subtracting anything that does not depend on the sampled z keeps the gradient unbiased;
    dividing by a positive z-independent number only rescales it."""

    def apply(self, reward, ctx: ControlVariateContext, previous=()):
        raise NotImplementedError

    def update(self, reward, ctx: ControlVariateContext):
        return tf.constant(0.0)

    def prepare(self, image_shape) -> None:
        pass


class _RunningMoments(ControlVariate):
    """Bias-corrected exponential moving averages of the reward's mean and second moment."""

    def __init__(self, decay=0.99, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        # Under a multi-replica strategy each replica's update is averaged: the statistics are
        # those of the global batch and agree on every replica.
        mean = tf.VariableAggregation.MEAN
        self.ema_mean = self.add_weight("ema_mean", [], initializer="zeros", trainable=False,
                                        aggregation=mean)
        self.ema_sq = self.add_weight("ema_sq", [], initializer="zeros", trainable=False,
                                      aggregation=mean)
        self.count = self.add_weight("count", [], initializer="zeros", trainable=False,
                                     aggregation=mean)

    def moments(self):
        correction = 1.0 - tf.pow(self.decay, self.count)
        safe = tf.maximum(correction, 1e-12)
        mean = tf.where(self.count > 0, self.ema_mean / safe, 0.0)
        var = tf.where(self.count > 0, self.ema_sq / safe - mean ** 2, 0.0)
        return mean, tf.maximum(var, 0.0)

    def update(self, reward, ctx):
        r = tf.stop_gradient(reward)
        self.ema_mean.assign(self.decay * self.ema_mean + (1 - self.decay) * tf.reduce_mean(r))
        self.ema_sq.assign(self.decay * self.ema_sq + (1 - self.decay) * tf.reduce_mean(r ** 2))
        self.count.assign_add(1.0)
        return tf.constant(0.0)


@CONTROL_VARIATES.register("centered")
class Centered(_RunningMoments):
    """r - running mean of r (from earlier batches, so independent of this batch's z)."""

    def apply(self, reward, ctx, previous=()):
        return reward - self.moments()[0]


@CONTROL_VARIATES.register("scaled")
class Scaled(_RunningMoments):
    """r / max(1, running standard deviation of r): a positive rescaling of the gradient."""

    def scale(self):
        return tf.maximum(1.0, tf.sqrt(self.moments()[1]))

    def apply(self, reward, ctx, previous=()):
        return reward / self.scale()


@CONTROL_VARIATES.register("self_critic")
class SelfCritic(ControlVariate):
    """r(z) - r(z'), z' ~ q(z|x) a fresh, independent sample (its reward passed through the
    control variates before this one in the chain, so the two stay comparable)."""

    def apply(self, reward, ctx, previous=()):
        critic = ctx.fresh_reward()
        for cv in previous:
            critic = cv.apply(critic, ctx)
        return reward - tf.stop_gradient(critic)


@CONTROL_VARIATES.register("baseline")
class LearnedBaseline(_RunningMoments):
    """r - b(x) with an input-dependent baseline b(x) = m + f_psi(x) (as in NVIL, Mnih and Gregor
    2014): m is the running mean of the rewards it sees, which tracks their drift as the model
    improves, and the network f_psi (last layer zero-initialised) learns the input-dependent
    residual by squared error, ``cv_loss = mean (r - m - f_psi(x))^2`` (gradient to psi only)."""

    def __init__(self, hidden=(128,), activation="relu", decay=0.99, **kwargs):
        super().__init__(decay=decay, **kwargs)
        self.net = keras.Sequential(
            [keras.layers.Flatten()] +
            [keras.layers.Dense(u, activation=activation) for u in hidden] +
            [keras.layers.Dense(1, kernel_initializer="zeros", name="baseline_out")],
            name="baseline_net")

    def prepare(self, image_shape) -> None:
        self.net.build((None,) + tuple(image_shape))

    def baseline(self, x):
        """b(x) = m + f_psi(x), shape [B] (the running mean from earlier batches)."""
        return self.moments()[0] + self.net(x)[:, 0]

    def apply(self, reward, ctx, previous=()):
        return reward - tf.stop_gradient(self.baseline(ctx.x))

    def update(self, reward, ctx):
        r = tf.stop_gradient(reward)
        loss = tf.reduce_mean((r - self.baseline(ctx.x)) ** 2)  # before the mean moves
        super().update(r, ctx)
        return loss


def build_control_variates(names: Sequence[str]):
    names = [n for n in names if n]
    return [CONTROL_VARIATES.build(n, name=f"cv_{i}_{n}") for i, n in enumerate(names)]


class _ScoreFunctionBase(Estimator):
    """Shared by the score-function and hybrid estimators: the control-variate chain."""

    metric_names = ("cv_loss",)

    def __init__(self, control_variates=(), **kwargs):
        super().__init__(**kwargs)
        self.control_variates = build_control_variates(control_variates)

    @property
    def gradient(self):
        names = [cv.name.split("_", 2)[-1] for cv in self.control_variates]
        return ("score_function", "baseline: " + (" then ".join(names) or "none"))

    @classmethod
    def from_config(cls, block, **context) -> "Estimator":
        return cls(control_variates=control_variates(block, allowed=True), name="estimator")

    def prepare(self, model) -> None:
        for cv in self.control_variates:
            cv.prepare(model.image_shape)

    @staticmethod
    def context(model, x, q, beta, training) -> ControlVariateContext:
        """The batch, and a maker of an independent reward sample for the self-critic."""

        def fresh_reward():
            z = stop_gradient(q.sample(model.num_samples))
            log_px, log_pz, log_qz = _log_joint_terms(model, x, z, q, training)
            return tf.stop_gradient(log_px + beta * (log_pz - log_qz))

        return ControlVariateContext(x=x, fresh_reward=fresh_reward)

    def adjusted_reward(self, reward, ctx, update_state):
        """Applies the whole chain with the state as it stands (so every link, and the
        self-critic's fresh reward, sees one consistent state), then, if ``update_state``,
        updates each link with the reward it saw."""
        cv_loss = tf.constant(0.0)
        r, seen = reward, []
        for i, cv in enumerate(self.control_variates):
            seen.append(r)
            r = cv.apply(r, ctx, previous=self.control_variates[:i])
        if update_state:
            for cv, r_in in zip(self.control_variates, seen):
                cv_loss += cv.update(r_in, ctx)
        return tf.stop_gradient(r), cv_loss


@ESTIMATORS.register("score_function")
class ScoreFunction(_ScoreFunctionBase):
    """REINFORCE (score-function) gradients, for any posterior. With z ~ q(z|x) (no path-wise
    gradient) and reward r = log p(x|z) + beta (log p(z) - log q(z|x)), one surrogate

        loss = -mean [ log p(x|z) + beta log p(z) + sg(cv(r)) * log q(z|x) ]  (+ cv_loss)

    gives in one backward pass the generative gradient grad_theta log p(x, z), the inference
    gradient cv(r) grad_phi log q(z|x), and the baseline's squared-error gradient;
    ``cv`` is the chain of control variates (``config.control_variates``).
    """

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        z = stop_gradient(q.sample(model.num_samples))                    # [S, B, L]
        log_px, log_pz, log_qz = _log_joint_terms(model, x, z, q, training)
        reward = tf.stop_gradient(log_px + beta * (log_pz - log_qz))

        ctx = self.context(model, x, q, beta, training)
        adjusted, cv_loss = self.adjusted_reward(reward, ctx, update_state)
        surrogate = -(log_px + beta * log_pz) - adjusted * log_qz
        distortion = -tf.reduce_mean(log_px, axis=0)
        rate, rates = rate_terms(model, q, z)
        return Terms(loss=tf.reduce_mean(surrogate) + cv_loss, elbo=-(distortion + rate),
                     distortion=distortion, rate=rate, rates=rates, extras={"cv_loss": cv_loss})


@ESTIMATORS.register("hybrid")
class Hybrid(_ScoreFunctionBase):
    """For a mixture posterior q(z|x) = sum_k pi_k(x) q_k(z|x): draw the component k ~ pi with a
    score-function gradient and z = mu_k + sigma_k eps path-wise within it:

        loss = -mean [ f(z) + sg(cv(f(z))) * log pi_k(x) ],   f = log p(x|z) + beta (log p(z) - log q(z|x)),

    where f keeps its path-wise dependence on the encoder through z and log q.
    """

    @property
    def gradient(self):
        return ("score_function", "the component by the score function (baseline: "
                + (" then ".join(cv.name.split("_", 2)[-1] for cv in self.control_variates)
                   or "none") + "), path-wise within it")

    def check(self, model) -> None:
        q = model.posterior_example()
        if not isinstance(q, tfd.MixtureSameFamily):
            raise ConfigError(
                "estimator 'hybrid' needs a mixture posterior (model.posterior.name='mog'); "
                f"model.posterior.name={model.posterior_name!r} has no component choice")
        if q.components_distribution.reparameterization_type != tfd.FULLY_REPARAMETERIZED:
            raise ConfigError("estimator 'hybrid' needs reparameterisable mixture components")

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        components = q.components_distribution                         # batch [B, K]
        num_components = tf.shape(q.mixture_distribution.logits)[-1]
        k = tf.stop_gradient(q.mixture_distribution.sample(model.num_samples))  # [S, B]
        z_all = components.sample(model.num_samples)                   # [S, B, K, L]
        z = tf.gather(z_all, k, axis=2, batch_dims=2)                  # [S, B, L]
        log_px, log_pz, log_qz = _log_joint_terms(model, x, z, q, training)
        f = log_px + beta * (log_pz - log_qz)
        log_pi = tf.reduce_sum(  # log pi_k(x) of the drawn components, [S, B]
            tf.one_hot(k, num_components) * tf.nn.log_softmax(q.mixture_distribution.logits),
            axis=-1)

        ctx = self.context(model, x, q, beta, training)
        adjusted, cv_loss = self.adjusted_reward(tf.stop_gradient(f), ctx, update_state)
        surrogate = -f - adjusted * log_pi
        distortion = -tf.reduce_mean(log_px, axis=0)
        rate, rates = rate_terms(model, q, tf.stop_gradient(z))
        return Terms(loss=tf.reduce_mean(surrogate) + cv_loss, elbo=-(distortion + rate),
                     distortion=distortion, rate=rate, rates=rates, extras={"cv_loss": cv_loss})


# ------------------------------------------------------------------ multi-sample objectives
@ESTIMATORS.register("iwae")
class IWAE(Estimator):
    """The importance-weighted bound with k = ``model.num_samples`` reparameterised samples,

        L_k(x) = log 1/k sum_s w_s,   log w_s = log p(x|z_s) + beta (log p(z_s) - log q(z_s|x)),

    as the training objective (beta = 1 gives the bound of Burda et al., 2016; tighter as k
    grows). Reports ``iwae`` = mean L_k alongside the single-sample ELBO decomposition.
    """

    metric_names = ("iwae",)
    gradient = ("reparameterized", "importance-weighted bound")

    def check(self, model) -> None:
        _needs_reparameterization(self.name_in_config, model)

    name_in_config = "iwae"

    def _bound(self, model, x, beta, training, q=None, q_for_weights=None):
        q = q if q is not None else model.encode(x, training=training)
        z = q.sample(model.num_samples)                                # [k, B, L]
        q_weights = q_for_weights if q_for_weights is not None else q
        log_px, log_pz, log_qz = _log_joint_terms(model, x, z, q_weights, training)
        log_w = log_px + beta * (log_pz - log_qz)
        k = tf.cast(model.num_samples, log_w.dtype)
        bound = tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(k)
        return q, z, log_px, log_w, bound

    def _report(self, model, q, z, log_px, bound, loss, group_losses=None):
        distortion = -tf.reduce_mean(log_px, axis=0)
        rate, rates = rate_terms(model, q, stop_gradient(z))
        return Terms(loss=loss, elbo=-(distortion + rate), distortion=distortion, rate=rate,
                     rates=rates, group_losses=group_losses or {},
                     extras={"iwae": tf.reduce_mean(bound)})

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q, z, log_px, _, bound = self._bound(model, x, beta, training)
        return self._report(model, q, z, log_px, bound, -tf.reduce_mean(bound))


@ESTIMATORS.register("dreg")
class DReG(IWAE):
    """IWAE objective with the doubly-reparameterised gradient for the inference network
    (Tucker et al., 2019): with normalised weights w~_s and q's parameters held fixed in log q,

        grad_phi = sum_s w~_s^2 d log w_s / d z_s * d z_s / d phi,

    an unbiased, lower-variance estimate of grad_phi L_k (its variance does not grow with k the
    way the plain IWAE inference gradient's signal-to-noise ratio falls). The generative model
    keeps the IWAE gradient.
    """

    name_in_config = "dreg"
    gradient = ("reparameterized", "doubly reparameterised inference gradient")

    def terms(self, model, x, beta=1.0, training=False, update_state=True) -> Terms:
        q = model.encode(x, training=training)
        _, z, log_px, log_w_stop, bound = self._bound(model, x, beta, training, q=q,
                                                      q_for_weights=PathwiseOnly(q))
        weights = tf.stop_gradient(tf.nn.softmax(log_w_stop, axis=0))  # w~_s, [k, B]
        inference_loss = -tf.reduce_mean(tf.reduce_sum(weights ** 2 * log_w_stop, axis=0))
        # The generative gradient of L_k: log q (with stopped parameters) carries none, and the
        # encoder is not in that group, so the bound itself is its loss.
        generative_loss = -tf.reduce_mean(bound)
        return self._report(model, q, z, log_px, bound, generative_loss,
                            group_losses={"inference": inference_loss,
                                          "generative": generative_loss})


class PathwiseOnly:
    """log q_phi'(z) with phi' = phi held fixed: the value of log q(z), and only the gradient
    that flows through z,

        log q(z) - log q(stop(z)) + stop(log q(z)),

    whose derivative is d log q / d z * dz / d phi (the direct, score-function part cancels).
    Unlike a stop-gradient at the encoder's outputs this also holds a flow's own weights fixed.
    ``log q(stop(z))`` scores a new tensor, so for a flow it runs the inverse (for an IAF, one
    MADE pass per coordinate)."""

    def __init__(self, q):
        self.q = q

    def log_prob(self, z):
        log_q = self.q.log_prob(z)
        return log_q - self.q.log_prob(stop_gradient(z)) + tf.stop_gradient(log_q)


def control_variates(block, allowed: bool = False):
    """The control-variate names of ``block.control_variates`` (a comma-separated chain),
    checked: each must exist, and only a score-function estimator (``allowed``) takes any."""
    cvs = block.get("control_variates", "")
    cvs = [c.strip() for c in (cvs.split(",") if isinstance(cvs, str) else cvs) if c.strip()]
    for name in cvs:
        CONTROL_VARIATES.get(name)
    if cvs and not allowed:
        raise ConfigError(
            f"estimator.control_variates={','.join(cvs)!r} only apply to score-function "
            f"estimators ('score_function', 'hybrid'), not estimator.name={block.name!r}; "
            "remove them")
    return cvs


def build(block, **context) -> Estimator:
    """The estimator of ``config.estimator`` (its name and control variates); ``context``:
    what an objective needs of the data (``num_train``, beta-TCVAE's N)."""
    return ESTIMATORS.create(block, **context)
