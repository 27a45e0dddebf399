"""Approximate posteriors q(z|x) as `tfp.layers.DistributionLambda` heads over encoder outputs.

A head maps encoder parameters ``[..., P]`` (``P = head.params_size``) to a distribution with
batch shape ``[...]`` and event shape ``[L]``.

References:
  [1] Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling (2016). Improved Variational
      Inference with Inverse Autoregressive Flow. NeurIPS.
  [2] Dinh, Sohl-Dickstein and Bengio (2017). Density estimation using Real NVP. ICLR.
  [3] Germain, Gregor, Murray and Larochelle (2015). MADE: Masked Autoencoder for Distribution
      Estimation. ICML.
  [4] Figurnov, Mohamed and Mnih (2018). Implicit Reparameterization Gradients. NeurIPS.
"""
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.distributions import flows
from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd, tfpl, tfb = tfp.distributions, tfp.layers, tfp.bijectors

POSTERIORS = Registry("posterior", field="model.posterior.name")


class PosteriorHead(tfpl.DistributionLambda):
    """Base of the heads: a Keras layer (it owns a flow's weights) whose `distribution` makes
    q(z|x) from encoder parameters. Call `distribution`, not the layer: a Keras call also
    converts the distribution to a tensor, which eager code would compute for nothing."""

    def __init__(self, make, convert_to_tensor_fn=tfd.Distribution.mean, **kwargs):
        super().__init__(make, convert_to_tensor_fn=convert_to_tensor_fn, **kwargs)
        self._make = make

    def distribution(self, params) -> tfd.Distribution:
        """q(z|x) with batch shape ``params.shape[:-1]`` and event shape ``[L]``."""
        return self._make(params)

    @classmethod
    def from_config(cls, block, *, latent_dim: int) -> "PosteriorHead":
        """The head from its config block (``config.model.posterior``)."""
        return cls(latent_dim, scale=block.scale, name="posterior")


def _hardtanh_logvar(raw):
    """sigma = exp(log_var / 2) with log_var = hardtanh(raw) in [-6, 2], as the VampPrior authors'
    encoder: the variance stays in [e^-6, e^2] and the gradient stops outside that range."""
    return tf.exp(0.5 * tf.clip_by_value(raw, -6.0, 2.0))


SCALE_FUNCTIONS = {"softplus": tf.math.softplus, "exp": tf.math.exp,
                   "hardtanh_logvar": _hardtanh_logvar}
MIN_SCALE = 1e-6


@POSTERIORS.register("gaussian")
class GaussianPosterior(PosteriorHead):
    """Mean-field Gaussian q(z|x) = N(mu, diag(sigma^2)), sigma = softplus(s), exp(s), or
    exp(hardtanh(s) / 2) (``hardtanh_logvar``: s is a log-variance clamped to [-6, 2]); + 1e-6.

    Built as ``Independent(Normal)``: reparameterised samples, and analytic KL against any
    prior for which TFP registers one (e.g. the standard normal).
    """

    def __init__(self, latent_dim: int, scale: str = "softplus", **kwargs):
        if scale not in SCALE_FUNCTIONS:
            raise ConfigError(f"model.posterior.scale={scale!r}; valid scales are: "
                              f"{', '.join(sorted(SCALE_FUNCTIONS))}")
        scale_fn = SCALE_FUNCTIONS[scale]
        self.latent_dim = latent_dim
        self.params_size = 2 * latent_dim

        def make(params):
            loc, raw_scale = tf.split(params, 2, axis=-1)
            return tfd.Independent(tfd.Normal(loc, scale_fn(raw_scale) + MIN_SCALE),
                                   reinterpreted_batch_ndims=1)

        super().__init__(make, **kwargs)


@POSTERIORS.register("mog")
class MixturePosterior(PosteriorHead):
    """Mixture of K mean-field Gaussians, q(z|x) = sum_k pi_k(x) N(mu_k(x), diag sigma_k(x)^2),
    with ``params_size = K + 2 K L`` encoder outputs.

    Trainable three ways: ``score_function`` for everything; ``reparameterized`` through TFP's
    implicit reparameterisation of the mixture (``reparameterize=True``); or ``hybrid`` (score
    function for the component choice, path-wise within the component). KL to any prior is
    Monte Carlo (no closed form for a mixture).
    """

    def __init__(self, latent_dim: int, num_components: int = 5, scale: str = "softplus",
                 reparameterize: bool = False, **kwargs):
        if scale not in SCALE_FUNCTIONS:
            raise ConfigError(f"model.posterior.scale={scale!r}; valid scales are: "
                              f"{', '.join(sorted(SCALE_FUNCTIONS))}")
        if num_components < 1:
            raise ConfigError(f"model.posterior.components={num_components} must be >= 1")
        scale_fn = SCALE_FUNCTIONS[scale]
        self.latent_dim, self.num_components = latent_dim, num_components
        self.params_size = num_components * (1 + 2 * latent_dim)
        k, d = num_components, latent_dim

        def make(params):
            lead = tf.shape(params)[:-1]
            logits = params[..., :k]
            loc, raw_scale = tf.split(params[..., k:], 2, axis=-1)
            shape = tf.concat([lead, [k, d]], 0)
            components = tfd.Independent(
                tfd.Normal(tf.reshape(loc, shape), scale_fn(tf.reshape(raw_scale, shape)) + MIN_SCALE),
                reinterpreted_batch_ndims=1)
            return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components,
                                         reparameterize=reparameterize)

        super().__init__(make, **kwargs)

    @classmethod
    def from_config(cls, block, *, latent_dim: int) -> "MixturePosterior":
        return cls(latent_dim, num_components=block.components, scale=block.scale,
                   reparameterize=block.reparameterize, name="posterior")


class _FlowPosterior(PosteriorHead):
    """Base of flow posteriors: a mean-field Gaussian base N(mu(x), sigma(x)^2) pushed through
    ``num_steps`` steps conditioned on an encoder context h, the coordinates' order reversed
    between steps and restored at the end (so a flow whose steps start as the identity starts
    as the Gaussian). Encoder outputs: ``params_size = 2 L + context``; KL is Monte Carlo.
    Subclasses implement ``_step(i, h)``, a bijector, and create their weights in ``_build``."""

    kind = ""

    def __init__(self, latent_dim: int, num_steps: int = 2, hidden=(128, 128), context: int = 32,
                 scale: str = "softplus", **kwargs):
        if scale not in SCALE_FUNCTIONS:
            raise ConfigError(f"model.posterior.scale={scale!r}; valid scales are: "
                              f"{', '.join(sorted(SCALE_FUNCTIONS))}")
        if num_steps < 1 or context < 1 or latent_dim < 2:
            raise ConfigError(
                f"model.posterior.name={self.kind!r} needs model.posterior.flow_steps >= 1 (got "
                f"{num_steps}), model.posterior.context >= 1 (got {context}) and "
                f"model.latent_dim >= 2 (got {latent_dim}: a flow on one coordinate is affine)")
        scale_fn = SCALE_FUNCTIONS[scale]
        self.latent_dim, self.context, self.num_steps = latent_dim, context, num_steps
        self.params_size = 2 * latent_dim + context
        reverse = list(reversed(range(latent_dim)))

        def make(params):
            loc = params[..., :latent_dim]
            raw_scale = params[..., latent_dim:2 * latent_dim]
            h = params[..., 2 * latent_dim:]
            base = tfd.Independent(tfd.Normal(loc, scale_fn(raw_scale) + MIN_SCALE),
                                   reinterpreted_batch_ndims=1)
            steps = []
            for i in range(num_steps):
                if i:
                    steps.append(tfb.Permute(reverse))
                steps.append(self._step(i, h))
            if num_steps % 2 == 0:
                steps.append(tfb.Permute(reverse))
            return tfd.TransformedDistribution(base, tfb.Chain(list(reversed(steps))))

        # As a tensor: the point code (no sample drawn on every call).
        super().__init__(make, convert_to_tensor_fn=lambda q: code(q), **kwargs)
        self._build(hidden)

    @classmethod
    def from_config(cls, block, *, latent_dim: int) -> "_FlowPosterior":
        return cls(latent_dim, num_steps=block.flow_steps, hidden=tuple(block.flow_hidden),
                   context=block.context, scale=block.scale, name="posterior")

    def _broadcast_context(self, h, z):
        """``(z, context)`` broadcast against each other: z ``[..., B', L]`` and the context
        ``[B, C]`` to one leading shape. ``B'`` may be 1 against ``B``, and z may lack the
        batch axis altogether: a mixture prior of flows q(z|u_k) (a VampPrior) scores
        ``z[..., None, :]`` against its K components."""
        lead = tf.broadcast_dynamic_shape(tf.shape(z)[:-1], tf.shape(h)[:-1])
        return (tf.broadcast_to(z, tf.concat([lead, tf.shape(z)[-1:]], 0)),
                tf.broadcast_to(h, tf.concat([lead, [self.context]], 0)))

    def _build(self, hidden):
        raise NotImplementedError

    def _step(self, i, h):
        raise NotImplementedError


@POSTERIORS.register("iaf")
class IAFPosterior(_FlowPosterior):
    """Inverse autoregressive flow (Kingma et al. 2016) on a mean-field Gaussian:

        z_0 = mu(x) + sigma(x) * eps,   z_k = (z_{k-1} - m_k(z_{k-1}, h)) * exp(-s_k(z_{k-1}, h)),

    each step a `tfb.Invert(tfb.MaskedAutoregressiveFlow)` whose MADE (`tfb.AutoregressiveNetwork`
    with the context as conditional input) makes m_k, s_k of coordinate i from coordinates < i.
    Sampling is one pass per step, and the ELBO's log q(z|x) of its own samples comes from TFP's
    bijector cache (no inverse pass); scoring other points runs the autoregressive inverse (L
    passes). The context enters each MADE's first layer (as in Kingma et al.), and each MADE's
    output layer starts at zero, so the flow starts as the identity and that layer learns from
    the first step.
    """

    kind = "iaf"

    def _build(self, hidden):
        self.mades = [tfb.AutoregressiveNetwork(
            params=2, event_shape=[self.latent_dim], hidden_units=list(hidden), conditional=True,
            conditional_event_shape=[self.context], conditional_input_layers="first_layer",
            activation="elu", name=f"made{i}")
            for i in range(self.num_steps)]
        for net in self.mades:  # creates the MADEs' weights now, then zeroes the output layer
            net(tf.zeros([1, self.latent_dim]), conditional_input=tf.zeros([1, self.context]))
            for weight in self.output_layer(net).weights:
                weight.assign(tf.zeros_like(weight))

    @staticmethod
    def output_layer(made):
        """The MADE's hidden-to-output masked dense layer. TFP offers no public handle on it
        (``AutoregressiveNetwork`` keeps its layers in ``_network``); tests/test_flows.py pins
        it: an IAF starts as the identity only if this layer is the one zeroed."""
        return [layer for layer in made._network.layers
                if isinstance(layer, keras.layers.Dense)][-1]

    def _step(self, i, h):
        net = self.mades[i]

        def shift_and_log_scale(z):
            # Scoring a point runs the autoregressive inverse, which iterates from zeros:
            # coordinates not yet solved hold transient values that can overflow, and a
            # masked-out (zero) weight times inf is NaN in every output. Those values never
            # reach the result, so non-finite entries are zeroed before the MADE.
            z = tf.where(tf.math.is_finite(z), z, tf.zeros_like(z))
            z, context = self._broadcast_context(h, z)
            out = net(z, conditional_input=context)
            return out[..., 0], out[..., 1]
        return tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale))


@POSTERIORS.register("realnvp")
class RealNVPPosterior(_FlowPosterior):
    """A coupling flow (`tfb.RealNVP`, Dinh et al. 2017) on a mean-field Gaussian, each coupling
    conditioned on the encoder context: unlike the IAF, both sampling and scoring any point are
    one pass. Starts as the identity (zero-initialised output layers)."""

    kind = "realnvp"

    def _build(self, hidden):
        half = self.latent_dim // 2
        self.nets = [flows.CouplingNet(hidden, self.latent_dim - half, name=f"coupling{i}")
                     for i in range(self.num_steps)]
        for net in self.nets:  # creates the weights now
            net(tf.zeros([1, half]), tf.zeros([1, self.context]))

    def _step(self, i, h):
        net = self.nets[i]
        return tfb.RealNVP(num_masked=self.latent_dim // 2,
                           shift_and_log_scale_fn=lambda x, units: net(
                               *self._broadcast_context(h, x)))


def code_statistics(q):
    """``(loc, scale)`` summarising q(z|x) per example: its mean and standard deviation, or,
    for a flow (no closed-form moments), the flow applied to the base mean and the base's
    standard deviation."""
    q = getattr(q, "tensor_distribution", q)
    try:
        return q.mean(), q.stddev()
    except NotImplementedError:
        # TFP builds a non-composite-tensor `_TransformedDistribution` for Python-function
        # bijectors, so check what it has, not its class.
        if hasattr(q, "bijector") and hasattr(q, "distribution"):
            base = q.distribution
            return q.bijector.forward(base.mean()), base.stddev()
        raise


def code(q):
    """A point code for each example (`code_statistics`' location)."""
    return code_statistics(q)[0]


def build(block, latent_dim: int):
    """The posterior head of ``block`` (``config.model.posterior``) for latents of
    ``latent_dim``."""
    return POSTERIORS.create(block, latent_dim=latent_dim)
