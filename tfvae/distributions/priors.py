"""Priors p(z) behind one small interface.

A prior is a Keras layer (so the model tracks, trains and checkpoints its variables) whose
``distribution()`` returns a `tfd.Distribution` with batch shape ``[]`` and event shape ``[L]``.
``log_prob(z)`` and ``sample(n)`` are shortcuts to it; ``log_prob`` broadcasts over any leading
axes of ``z``, e.g. ``[S, B, L] -> [S, B]``. KL(q || p) is analytic only where TFP registers one
(the standard normal); for every other prior the model uses the Monte Carlo estimate.

Why learnable priors: with a fixed N(0, I) the aggregated posterior q(z) = 1/N sum_n q(z|x_n)
leaves "holes" of prior mass that decode to nothing like the data, and the rate pays for the
mismatch. The optimal prior is q(z) itself; the priors here approximate it:

| name | p(z) | learnable |
| --- | --- | --- |
| ``standard_normal`` | N(0, I) | nothing |
| ``mog`` | sum_k w_k N(mu_k, diag sigma_k^2) | w, mu, sigma |
| ``vamp`` | sum_k w_k q(z | u_k), u_k pseudo-inputs in data space (Tomczak and Welling, 2018) | u (and w) |
| ``gtm`` | 1/K sum_k N(f_mu(g_k), diag f_sigma(g_k)^2), g_k a fixed 2-D grid | the network f |
| ``gtm_vamp`` | 1/K sum_k q(z | h(g_k)), h maps the grid to pseudo-inputs | the network h |
| ``realnvp`` | N(0, I) pushed through RealNVP couplings (Dinh et al., 2017) | coupling networks |

References:
  [1] Tomczak and Welling (2018). VAE with a VampPrior. AISTATS.
  [2] Bishop, Svensen and Williams (1998). GTM: The Generative Topographic Mapping. Neural
      Computation 10.
  [3] Dinh, Sohl-Dickstein and Bengio (2017). Density estimation using Real NVP. ICLR.
  [4] Hoffman and Johnson (2016). ELBO surgery: yet another way to carve up the variational
      evidence lower bound. NIPS Workshop on Advances in Approximate Bayesian Inference.
"""
import dataclasses
import math
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.distributions import flows
from tfvae.errors import ConfigError
from tfvae.registry import Registry

tfd, tfb = tfp.distributions, tfp.bijectors

PRIORS = Registry("prior", field="model.prior.name")
MIN_SCALE = 1e-4


@dataclasses.dataclass
class PriorContext:
    """What a prior may need from the model it belongs to (e.g. a VampPrior needs the encoder).

    ``posterior_fn`` maps images ``[K, H, W, C]`` to q(z|x) with batch shape ``[K]``;
    ``train_images`` are a few training images ``[M, H, W, C]``, e.g. to initialise pseudo-inputs.
    """

    image_shape: Tuple[int, int, int]
    posterior_fn: Optional[Callable] = None
    train_images: Optional[object] = None
    code_classes: int = 2  # a categorical code's classes per group (`tfvae.distributions.codes`)


def diagonal_gaussian_mixture_log_prob(z, logits, loc, scale, refine: int = 2):
    """log sum_k softmax(logits)_k N(z; loc_k, diag(scale_k^2)) for ``z`` ``[..., L]``, with
    ``logits`` ``[K]`` and ``loc``, ``scale`` ``[K, L]``; returns ``z.shape[:-1]``.

    The same value as TFP's ``MixtureSameFamily(Categorical, Independent(Normal))`` without its
    ``[..., K, L]`` intermediates and their gradients (which made a K = 500 prior cost 2x a
    training step): the K quadratic forms come from expanding sum_l (z_l - mu_kl)^2 / s_kl^2
    into two ``[N, L] x [L, K]`` matmuls. That expansion loses float32 digits when scales are
    small (large terms cancel), so the ``refine`` components with the highest approximate
    weight, the ones that carry the sum, are recomputed directly (``[N, refine, L]``); the rest
    keep the expansion, whose absolute error then enters only in proportion to their share.
    """
    dtype = z.dtype
    latent = tf.shape(z)[-1]
    flat = tf.reshape(z, [-1, latent])                                         # [N, L]
    log_weights = tf.nn.log_softmax(tf.cast(logits, dtype))                    # [K]
    log_scale = tf.math.log(scale)
    log_norm = tf.reduce_sum(log_scale, axis=-1) + 0.5 * tf.cast(latent, dtype) * np.log(2 * np.pi)
    precision = tf.math.reciprocal(tf.square(scale))                           # [K, L]
    quad = (tf.matmul(tf.square(flat), precision, transpose_b=True)
            - 2.0 * tf.matmul(flat, loc * precision, transpose_b=True)
            + tf.reduce_sum(tf.square(loc) * precision, axis=-1))              # [N, K]
    approx = log_weights - log_norm - 0.5 * quad                               # [N, K]
    refine = min(int(refine), int(loc.shape[0]) if loc.shape[0] is not None else refine)
    _, top = tf.math.top_k(tf.stop_gradient(approx), k=refine)                 # [N, m]
    diff = (flat[:, None, :] - tf.gather(loc, top)) / tf.gather(scale, top)   # [N, m, L]
    exact = (tf.gather(log_weights - log_norm, top)
             - 0.5 * tf.reduce_sum(tf.square(diff), axis=-1))                  # [N, m]
    chosen = tf.reduce_sum(tf.one_hot(top, tf.shape(approx)[-1], dtype=dtype), axis=1) > 0
    rest = tf.where(chosen, tf.constant(-np.inf, dtype), approx)
    log_p = tf.reduce_logsumexp(tf.concat([exact, rest], axis=-1), axis=-1)
    return tf.reshape(log_p, tf.shape(z)[:-1])


def gaussian_parameters(distribution):
    """``(loc, scale)`` of an ``Independent(Normal)`` with one reinterpreted axis, else None."""
    # Keras TFP layers return a tensor-coercible wrapper around the distribution they made.
    distribution = getattr(distribution, "tensor_distribution", distribution)
    if (isinstance(distribution, tfd.Independent)
            and isinstance(distribution.distribution, tfd.Normal)
            and tf.get_static_value(distribution.reinterpreted_batch_ndims) == 1):
        inner = distribution.distribution
        return inner.loc, inner.scale
    return None


class Prior(keras.layers.Layer):
    """Base class: subclasses implement ``distribution()``; mixtures of diagonal Gaussians also
    implement ``mixture_parameters()``, which gives them the fast `log_prob`."""

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dims: the prior's layer of {latent_dim} dimensions "
                              "must have a positive size")
        self.latent_dim = latent_dim

    @classmethod
    def from_config(cls, block, *, latent_dim: int, context: PriorContext) -> "Prior":
        """The prior from its config block ``config.model.prior`` (override to read the
        prior's own options), for latents of ``latent_dim``."""
        del block, context
        return cls(latent_dim, name="prior")

    def distribution(self) -> tfd.Distribution:
        raise NotImplementedError

    def call(self, inputs=None):
        return self.distribution()

    def mixture_parameters(self):
        """``(logits [K], loc [K, L], scale [K, L])`` for a mixture of diagonal Gaussians, else
        None (then `log_prob` is the distribution's own)."""
        return None

    def log_prob_fn(self):
        """A function z -> log p(z) with the prior's parameters computed once (e.g. one encoder
        pass over a VampPrior's pseudo-inputs for many calls)."""
        params = self.mixture_parameters()
        if params is not None:
            return lambda z: diagonal_gaussian_mixture_log_prob(z, *params)
        return self.distribution().log_prob

    def log_prob(self, z):
        return self.log_prob_fn()(z)

    def sample(self, n, seed=None, temperature=1.0):
        """``n`` draws ``[n, L]``. ``temperature`` T scales the prior's noise: each Gaussian
        component's standard deviation (mixtures), the base noise (a flow, the standard normal);
        T < 1 gives typical samples, T = 1 the prior itself. ``seed``: stateless, shape [2]."""
        params = self.mixture_parameters()
        if params is None:
            return self._tempered_sample(n, seed, temperature)
        logits, loc, scale = params
        pick_seed, noise_seed = (tfp.random.split_seed(seed, 2) if seed is not None
                                 else (None, None))
        k = tfd.Categorical(logits=logits).sample(n, seed=pick_seed)
        eps = tfd.Normal(tf.zeros([], loc.dtype), 1.0).sample(
            tf.stack([n, tf.shape(loc)[-1]]), seed=noise_seed)
        return tf.gather(loc, k) + temperature * tf.gather(scale, k) * eps

    def _tempered_sample(self, n, seed, temperature):
        """Priors that are not Gaussian mixtures: override to support temperature != 1."""
        tf.debugging.assert_equal(tf.cast(temperature, tf.float32), 1.0, message=(
            f"{type(self).__name__} has no sampling temperature; use temperature=1"))
        return self.distribution().sample(n, seed=seed)


def _check_components(k):
    if k < 1:
        raise ConfigError(f"model.prior.components={k} must be >= 1 (the number of mixture "
                          "components)")


def _mlp(hidden, output_units, activation, name, output_activation=None):
    layers = [keras.layers.Dense(u, activation=activation, name=f"{name}_dense{i}")
              for i, u in enumerate(hidden)]
    layers.append(keras.layers.Dense(output_units, activation=output_activation,
                                     name=f"{name}_out"))
    return keras.Sequential(layers, name=name)


def _grid(k: int) -> np.ndarray:
    """A square grid of K points on [-1, 1]^2, ``[K, 2]``; K must be a square number."""
    side = math.isqrt(k)
    if side * side != k:
        raise ConfigError(
            f"model.prior.components={k} is not a square number; the GTM grid is side x side "
            f"points: use e.g. {side * side} or {(side + 1) ** 2}")
    axis = np.linspace(-1.0, 1.0, side) if side > 1 else np.zeros(1)
    return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2).astype(np.float32)


@PRIORS.register("standard_normal")
class StandardNormal(Prior):
    """p(z) = N(0, I): fixed, with an analytic KL to a Gaussian posterior."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], self.dtype)
        return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), reinterpreted_batch_ndims=1)

    def _tempered_sample(self, n, seed, temperature):
        return temperature * self.distribution().sample(n, seed=seed)


@PRIORS.register("mog")
class MixtureOfGaussians(Prior):
    """p(z) = sum_k softmax(a)_k N(z; mu_k, diag(softplus(s_k)^2)), K learnable components.

    Means start at N(0, init_spread^2) draws so components are distinct, scales at 1.
    """

    def __init__(self, latent_dim, num_components=10, init_spread=1.0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        _check_components(num_components)
        self.num_components = num_components
        self.logits = self.add_weight("logits", [num_components], initializer="zeros")
        self.locs = self.add_weight(
            "locs", [num_components, latent_dim],
            initializer=keras.initializers.RandomNormal(stddev=init_spread))
        self.raw_scales = self.add_weight(
            "raw_scales", [num_components, latent_dim],
            initializer=keras.initializers.Constant(np.log(np.expm1(1.0))))

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.components, name="prior")

    def mixture_parameters(self):
        return self.logits, self.locs, tf.nn.softplus(self.raw_scales) + MIN_SCALE

    def distribution(self):
        logits, loc, scale = self.mixture_parameters()
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=logits),
            tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1))


class _EncoderMixture(Prior):
    """Shared by VampPrior and GTM-VampPrior: p(z) = sum_k w_k q(z | u_k) for pseudo-inputs u_k."""

    def __init__(self, latent_dim, num_components, posterior_fn, learn_weights=False, **kwargs):
        super().__init__(latent_dim, **kwargs)
        _check_components(num_components)
        if posterior_fn is None:
            raise ValueError(f"{type(self).__name__} needs the model's encoder (posterior_fn)")
        self.num_components = num_components
        self._posterior_fn = posterior_fn
        self.logits = self.add_weight("logits", [num_components], initializer="zeros",
                                      trainable=learn_weights)

    def pseudo_inputs(self):
        raise NotImplementedError

    def distribution(self):
        q = self._posterior_fn(self.pseudo_inputs())  # batch [K], event [L]
        return tfd.MixtureSameFamily(tfd.Categorical(logits=self.logits), q)

    def mixture_parameters(self):
        params = gaussian_parameters(self._posterior_fn(self.pseudo_inputs()))
        return None if params is None else (self.logits,) + params

    def log_prob_fn(self):
        """Gaussian components: the fast mixture density. Others (a flow posterior's q(z|u_k))
        score z broadcast to ``[..., K, L]`` against the K components, then
        log sum_k w_k q(z|u_k): TFP's ``MixtureSameFamily`` hands them ``[..., 1, L]``, which
        a flow conditioned on the K contexts (an IAF's autoregressive inverse, a loop whose
        state must keep its shape) cannot take."""
        if self.mixture_parameters() is not None:
            return super().log_prob_fn()
        q = self._posterior_fn(self.pseudo_inputs())                  # batch [K]
        log_w = tf.nn.log_softmax(self.logits)

        def log_prob(z):
            shape = tf.concat([tf.shape(z)[:-1], [self.num_components, self.latent_dim]], 0)
            return tf.reduce_logsumexp(
                q.log_prob(tf.broadcast_to(z[..., None, :], shape)) + log_w, axis=-1)
        return log_prob


@PRIORS.register("vamp")
class VampPrior(_EncoderMixture):
    """p(z) = sum_k w_k q(z | u_k), with K learnable pseudo-inputs u_k kept in [0, 1] (the data
    range) pushed through the encoder; w uniform unless ``learn_weights``.

    ``parametrization``: ``sigmoid`` (u = sigmoid(v)) or ``hardtanh`` (u = clip(v, 0, 1), the
    authors' code: a bias-free dense layer on a fixed identity input, then a hardtanh).
    ``init='data'`` starts u_k at random training images (sigmoid: squashed into [0.05, 0.95] so
    the logit is finite; hardtanh: plus N(0, 0.01) noise); ``init='noise'`` at 0.5 + N(0, 0.01)
    (sigmoid) or N(0.05, 0.01) (hardtanh, the authors' MNIST setting).
    """

    INITS = ("data", "noise")
    PARAMETRIZATIONS = ("sigmoid", "hardtanh")

    def __init__(self, latent_dim, num_components, posterior_fn, image_shape,
                 init="data", train_images=None, learn_weights=False, seed=0,
                 parametrization="sigmoid", **kwargs):
        super().__init__(latent_dim, num_components, posterior_fn, learn_weights, **kwargs)
        if init not in self.INITS:
            raise ConfigError(f"model.prior.init={init!r}; valid inits are: {', '.join(self.INITS)}")
        if parametrization not in self.PARAMETRIZATIONS:
            raise ConfigError(f"model.prior.pseudo_inputs={parametrization!r}; valid choices "
                              f"are: {', '.join(self.PARAMETRIZATIONS)}")
        self.parametrization = parametrization
        rng = np.random.default_rng(seed)
        shape = (num_components,) + tuple(image_shape)
        noise = 0.01 * rng.standard_normal(shape).astype(np.float32)
        if init == "data" and train_images is not None and len(train_images):
            images = np.asarray(train_images, np.float32)
            start = images[rng.integers(0, len(images), num_components)]
            raw = (np.log((0.05 + 0.9 * start) / (0.95 - 0.9 * start))
                   if parametrization == "sigmoid" else start + noise)
        else:
            raw = (np.log((0.5 + noise) / (0.5 - noise)) if parametrization == "sigmoid"
                   else 0.05 + noise)
        self.raw_pseudo_inputs = self.add_weight(
            "raw_pseudo_inputs", shape, initializer=keras.initializers.Constant(raw))

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.components, context.posterior_fn, context.image_shape,
                   init=block.init, train_images=context.train_images,
                   learn_weights=block.learn_weights, parametrization=block.pseudo_inputs,
                   name="prior")

    def pseudo_inputs(self):
        if self.parametrization == "hardtanh":
            return tf.clip_by_value(self.raw_pseudo_inputs, 0.0, 1.0)
        return tf.sigmoid(self.raw_pseudo_inputs)


@PRIORS.register("gtm")
class GTMPrior(Prior):
    """Generative-topographic-mapping prior: a fixed square grid of K points g_k in [-1, 1]^2,
    mapped by a learnable network f to the means and scales of an equally weighted mixture,
    p(z) = 1/K sum_k N(z; f_mu(g_k), diag softplus(f_s(g_k))^2). The grid makes the mixture a
    smooth 2-D manifold through latent space."""

    def __init__(self, latent_dim, num_components, hidden=(64, 64), activation="relu", **kwargs):
        super().__init__(latent_dim, **kwargs)
        _check_components(num_components)
        self.num_components = num_components
        self.grid = tf.constant(_grid(num_components))
        self.net = _mlp(hidden, 2 * latent_dim, activation, "gtm_net")
        self.net.build((None, 2))

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.components, tuple(block.hidden), block.activation,
                   name="prior")

    def distribution(self):
        logits, loc, scale = self.mixture_parameters()
        components = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)

    def mixture_parameters(self):
        loc, raw_scale = tf.split(self.net(self.grid), 2, axis=-1)
        return tf.zeros([self.num_components]), loc, tf.nn.softplus(raw_scale) + MIN_SCALE


@PRIORS.register("gtm_vamp")
class GTMVampPrior(_EncoderMixture):
    """A VampPrior whose pseudo-inputs lie on a learnt 2-D manifold in data space: the fixed grid
    g_k is mapped by a network h (sigmoid output, so in [0, 1]) to u_k = h(g_k), then
    p(z) = 1/K sum_k q(z | u_k)."""

    def __init__(self, latent_dim, num_components, posterior_fn, image_shape, hidden=(64, 64),
                 activation="relu", learn_weights=False, **kwargs):
        super().__init__(latent_dim, num_components, posterior_fn, learn_weights, **kwargs)
        self.grid = tf.constant(_grid(num_components))
        self.image_shape = tuple(image_shape)
        self.net = _mlp(hidden, int(np.prod(image_shape)), activation, "gtm_vamp_net",
                        output_activation="sigmoid")
        self.net.build((None, 2))

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.components, context.posterior_fn, context.image_shape,
                   tuple(block.hidden), block.activation, learn_weights=block.learn_weights,
                   name="prior")

    def pseudo_inputs(self):
        return tf.reshape(self.net(self.grid), (self.num_components,) + self.image_shape)


@PRIORS.register("realnvp")
class RealNVPPrior(Prior):
    """p(z) = N(0, I) pushed through ``num_layers`` `tfb.RealNVP` affine couplings, with a
    `tfb.Permute` (reversal) between them so every coordinate is transformed:

        log p(z) = log N(f^{-1}(z); 0, I) + log |det d f^{-1}(z) / dz|.

    Each coupling splits z into two equal halves, so the latent size must be even.
    """

    def __init__(self, latent_dim, num_layers=4, hidden=(64, 64), activation="relu", **kwargs):
        super().__init__(latent_dim, **kwargs)
        if latent_dim % 2 or latent_dim < 2:
            raise ConfigError(
                f"model.latent_dims: the prior's layer has {latent_dim} dimensions, an odd "
                "number; the RealNVP prior's couplings split z into two equal halves: use an "
                "even size for it (the top layer) or another prior")
        if num_layers < 1:
            raise ConfigError(f"model.prior.flow_layers={num_layers} must be >= 1")
        self.num_layers = num_layers
        half = latent_dim // 2
        self.coupling_nets = [flows.CouplingNet(hidden, latent_dim - half, activation,
                                           name=f"coupling{i}") for i in range(num_layers)]
        for net in self.coupling_nets:
            net(tf.zeros([1, half]))  # creates the variables

    @classmethod
    def from_config(cls, block, *, latent_dim, context):
        return cls(latent_dim, block.flow_layers, tuple(block.hidden), block.activation,
                   name="prior")

    def bijector(self) -> tfb.Bijector:
        """z = f(x): couplings interleaved with reversals (applied right to left by Chain)."""
        half = self.latent_dim // 2
        reverse = list(range(self.latent_dim))[::-1]
        steps = []
        for i, net in enumerate(self.coupling_nets):
            steps.append(tfb.RealNVP(num_masked=half,
                                     shift_and_log_scale_fn=lambda x, d, net=net: net(x),
                                     name=f"realnvp{i}"))
            if i < self.num_layers - 1:
                steps.append(tfb.Permute(reverse, name=f"reverse{i}"))
        return tfb.Chain(list(reversed(steps)))

    def base(self):
        zeros = tf.zeros([self.latent_dim], self.dtype)
        return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), reinterpreted_batch_ndims=1)

    def distribution(self):
        return tfd.TransformedDistribution(self.base(), self.bijector())

    def _tempered_sample(self, n, seed, temperature):
        return self.bijector().forward(temperature * self.base().sample(n, seed=seed))


# Settings per prior (fields of ``config.model.prior``) used by configs/priors.py and
# scripts/experiments/compare_priors.py: K = 500 components or pseudo-inputs as in Tomczak and Welling
# (2018); 20 x 20 GTM grids; a 6-layer flow.
RECOMMENDED = {
    "standard_normal": {},
    "mog": {"components": 500},
    "vamp": {"components": 500, "init": "data"},
    "gtm": {"components": 400, "hidden": (128, 128)},
    "gtm_vamp": {"components": 400, "hidden": (128, 256)},
    "realnvp": {"flow_layers": 6, "hidden": (256, 256)},
}


def build(block, latent_dim: int, context: PriorContext) -> Prior:
    """The prior of ``block`` (``config.model.prior``) over latents of ``latent_dim`` (the top
    layer's size)."""
    return PRIORS.create(block, latent_dim=latent_dim, context=context)
