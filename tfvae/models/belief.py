"""Discrete latent layers: a sigmoid (or categorical) belief network b_1 ... b_L over the images,
as a latent structure of `tfvae.models.nodes` (the ``Layer`` interface).

    p(x, b) = p(x | b_1) prod_{l<L} p(b_l | b_{l+1}) p(b_L)       (generative, top-down)
    q(b | x) = q(b_1 | x) prod_{l>1} q(b_l | b_{l-1})             (inference, bottom-up)

each factor a factorised Bernoulli or a product of one-hot categoricals (`tfvae.distributions.codes`),
its logits an affine map (``model.network.hidden=()``: the "linear" belief networks of Mnih and
Gregor 2014, Yin and Zhou 2019, Dong et al. 2020) or an MLP of its parent. The encoder and its
head make q(b_1 | x), the decoder p(x | b_1), the prior p(b_L) (learned logits); the layers in
between are this module's (`BeliefLayers`, the model's ``belief`` attribute).

What the discrete estimators (`tfvae.inference.discrete`) ask of it: the logits of layer l at
its parent (`logits`), the layers below l+1 resampled given b_1..b_l (`complete`), the codes'
families (`codes`), and the support of a small code (`support`, for exact enumeration).
One layer (L = 1) is a `nodes.Layer` with a discrete head: its rate is the analytic KL.
"""
import itertools
from typing import List, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae.distributions import codes as codes_lib
from tfvae.distributions import posteriors
from tfvae.errors import ConfigError
from tfvae.models import nodes

tfd = tfp.distributions


def layer_network(hidden, activation, output_units, name, input_dim) -> keras.Sequential:
    """``[..., input_dim] -> [..., output_units]`` logits: affine if ``hidden`` is empty."""
    layers = [keras.layers.InputLayer((input_dim,))]
    layers += [keras.layers.Dense(u, activation=activation, name=f"{name}_dense{i}")
               for i, u in enumerate(hidden)]
    layers.append(keras.layers.Dense(output_units, name=f"{name}_out"))
    return keras.Sequential(layers, name=name)


class BeliefLayers(keras.layers.Layer):
    """The networks between latent layers: ``up[l]``: b_{l+1} -> logits of q(b_{l+2} | b_{l+1})
    and ``down[l]``: b_{l+2} -> logits of p(b_{l+1} | b_{l+2}), l = 0 .. L-2."""

    def __init__(self, latent_dims: Sequence[int], hidden=(), activation="relu", **kwargs):
        super().__init__(**kwargs)
        dims = [int(d) for d in latent_dims]
        self.up = [layer_network(hidden, activation, dims[l + 1], f"q_z{l + 2}", dims[l])
                   for l in range(len(dims) - 1)]
        self.down = [layer_network(tuple(reversed(hidden)), activation, dims[l], f"p_z{l + 1}",
                                   dims[l + 1]) for l in range(len(dims) - 1)]

    def call(self, inputs):
        raise TypeError("BeliefLayers are used through tfvae.models.belief.BeliefNet")


def _apply(net, z):
    """A dense network over the last axis of ``z`` with any leading axes."""
    lead = tf.shape(z)[:-1]
    out = net(tf.reshape(z, [-1, z.shape[-1]]))
    return tf.reshape(out, tf.concat([lead, [out.shape[-1]]], 0))


class BeliefPosterior:
    """q(b_1..b_L | x), sampled bottom-up: ``sample`` gives the tuple ``(b_1, ..., b_L)``,
    ``log_prob`` takes it; ``conditionals(z)`` are the factors at the parents in ``z``."""

    reparameterization_type = tfd.NOT_REPARAMETERIZED

    def __init__(self, structure, model, bottom: tfd.Distribution, training=None):
        self.structure, self.model, self.bottom, self.training = structure, model, bottom, training

    @property
    def joint(self) -> tfd.Distribution:
        """The same q as a TFP joint distribution (for TFP's own estimators, e.g. VIMCO)."""
        def bottom_up():
            b = yield tfd.JointDistributionCoroutine.Root(self.bottom)
            for l in range(1, self.structure.num_layers):
                b = yield self.factor(l, b)

        return tfd.JointDistributionCoroutine(bottom_up)

    def factor(self, l, parent):
        """q(b_{l+1} | b_l) for l >= 1 (``parent`` = b_l)."""
        return self.structure.codes[l].distribution(_apply(self.model.belief.up[l - 1], parent))

    def sample(self, sample_shape=(), seed=None):
        seeds = (tfp.random.split_seed(seed, self.structure.num_layers) if seed is not None
                 else [None] * self.structure.num_layers)
        z = [self.bottom.sample(sample_shape, seed=seeds[0])]
        for l in range(1, self.structure.num_layers):
            z.append(self.factor(l, z[-1]).sample(seed=seeds[l]))
        return tuple(z)

    def conditionals(self, z) -> List[tfd.Distribution]:
        return [self.bottom] + [self.factor(l, z[l - 1]) for l in range(1, len(z))]

    def log_prob(self, z):
        # Python's sum broadcasts: q(b_1 | x) is [S, B], the factors above need no x.
        return sum(q.log_prob(b) for q, b in zip(self.conditionals(z), z))

    def code_statistics(self):
        """Each layer's mean with its parent at its mean (bottom-up), flat, and its sd there."""
        locs, scales = [self.bottom.mean()], [self.bottom.stddev()]
        for l in range(1, self.structure.num_layers):
            q = self.factor(l, locs[-1])
            locs.append(q.mean())
            scales.append(q.stddev())
        return tf.concat(locs, -1), tf.concat(scales, -1)


class BeliefNet(nodes.Layer):
    """L discrete layers b_1 (nearest x) ... b_L of one family (``bernoulli`` or
    ``categorical``), z the tuple of layers (one tensor for L = 1)."""

    def __init__(self, latent_dims, family: str, classes: int = 2, hidden=(),
                 activation="relu"):
        self.latent_dims = tuple(int(d) for d in latent_dims)
        self.num_layers = len(self.latent_dims)
        self.family = family
        self.codes = [codes_lib.family(family, d, classes) for d in self.latent_dims]
        # The Keras layers the model holds for it, as its attributes (checkpoint paths).
        self.parts = {} if self.num_layers == 1 else {
            "belief": BeliefLayers(self.latent_dims, hidden, activation, name="belief")}

    # ------------------------------------------------------------------ the proposal
    def encode(self, model, x, training=None, labels=None, copies: int = 1):
        bottom = nodes.Layer.encode_top(self, model, x, training, labels, copies)
        if self.num_layers == 1:
            return bottom
        return BeliefPosterior(self, model, bottom, training)

    def posterior_example(self, model, labels=None):
        return model.posterior_head.distribution(tf.zeros([1, model.posterior_head.params_size]))

    def logits(self, model, x, l: int, parent, training=None):
        """Logits of q(b_{l+1} | parent): of q(b_1 | x) for l = 0 (``parent`` is x)."""
        if l == 0:
            return codes_lib.logits_of(nodes.Layer.encode_top(self, model, x, training))
        return _apply(model.belief.up[l - 1], parent)

    def complete(self, model, prefix, training=None):
        """The latents with b_1..b_m given (``prefix``) and b_{m+1}..b_L drawn from q."""
        z = list(prefix)
        for l in range(len(z), self.num_layers):
            z.append(self.codes[l].distribution(self.logits(model, None, l, z[-1])).sample())
        return z[0] if self.num_layers == 1 else tuple(z)

    # ------------------------------------------------------------------ the model
    def decode(self, model, z, training=None, labels=None):
        if self.num_layers > 1 and tf.is_tensor(z):  # the flat view (`join`)
            z = self.split(z)
        bottom = z if self.num_layers == 1 else z[0]
        return nodes.Layer.decode(self, model, bottom, training, labels)

    def prior_factor(self, model, l, parent):
        """p(b_{l+1} | b_{l+2} = parent), l < L - 1."""
        return self.codes[l].distribution(_apply(model.belief.down[l], parent))

    def log_prior_fn(self, model, log_top, training=False):
        if self.num_layers == 1:
            return log_top
        return lambda z: log_top(z[-1]) + sum(
            self.prior_factor(model, l, z[l + 1]).log_prob(z[l])
            for l in range(self.num_layers - 1))

    def conditional_priors(self, model, z):
        if self.num_layers == 1:
            return []
        return [self.prior_factor(model, l, z[l + 1]) for l in range(self.num_layers - 1)]

    def rates(self, model, q, z, top_rate):
        """Per layer (bottom first), averaged over the samples: log q(b_l | b_{l-1}) -
        log p(b_l | b_{l+1}), the top layer's KL(q(b_L | b_{L-1}) || p(b_L)) analytic."""
        if self.num_layers == 1:
            return [top_rate(q, z)]
        qs, ps = q.conditionals(z), self.conditional_priors(model, z)
        out = [tf.reduce_mean(q_l.log_prob(b) - p_l.log_prob(b), 0)
               for q_l, p_l, b in zip(qs, ps, z)]
        top = tfd.kl_divergence(qs[-1], model.prior.distribution())
        return out + [tf.reduce_mean(top, 0)]

    def rate_names(self):
        return () if self.num_layers == 1 else tuple(
            f"rate_z{l + 1}" for l in range(self.num_layers))

    def code_statistics(self, q):
        if self.num_layers == 1:
            return posteriors.code_statistics(q)
        return q.code_statistics()

    def sample_latents(self, model, n, seed=None, temperature=1.0):
        """b_L ~ p(b_L), then b_l ~ p(b_l | b_{l+1}) down to b_1; flat ``[n, sum d_l]``."""
        tf.debugging.assert_equal(tf.cast(temperature, tf.float32), 1.0, message=(
            "a discrete code has no sampling temperature; use temperature=1"))
        seeds = (tfp.random.split_seed(seed, self.num_layers) if seed is not None
                 else [None] * self.num_layers)
        z = [model.prior.sample(n, seed=seeds[0])]
        for l in reversed(range(self.num_layers - 1)):
            z.insert(0, self.prior_factor(model, l, z[0]).sample(seed=seeds[l + 1]))
        return self.join(tuple(z)) if self.num_layers > 1 else z[0]

    def join(self, z):
        return z if self.num_layers == 1 else tf.concat(z, axis=-1)

    def split(self, flat):
        if self.num_layers == 1:
            return flat
        return tuple(tf.split(flat, list(self.latent_dims), axis=-1))

    def variables(self, model):
        generative, inference = nodes.Layer.variables(self, model)
        if self.num_layers > 1:
            generative += [v for net in model.belief.down for v in net.trainable_variables]
            inference += [v for net in model.belief.up for v in net.trainable_variables]
        return generative, inference

    def nodes(self, model, gradient: str, detail: str, label_parent: bool):
        extra = ("y",) if label_parent else ()
        if self.num_layers == 1:
            return (nodes.Node("z", self.family, ("x",) + extra, gradient, detail, False),)
        return tuple(nodes.Node(f"z{l + 1}", self.family, ("x",) if l == 0 else (f"z{l}",),
                                gradient, detail, False)
                     for l in reversed(range(self.num_layers)))

    # ------------------------------------------------------------------ enumeration
    def support_size(self) -> int:
        size = 1
        for code in self.codes:
            size *= code.support_size()
            if size > codes_lib.MAX_SUPPORT:
                return codes_lib.MAX_SUPPORT + 1
        return size

    def support(self):
        """Every value of z: a tensor ``[N, d]`` (L = 1) or a tuple of ``[N, d_l]``."""
        if self.support_size() > codes_lib.MAX_SUPPORT:
            raise ConfigError(f"a code of {self.support_size()}+ values is too large to enumerate "
                              f"(at most {codes_lib.MAX_SUPPORT}); use a sampling estimator")
        layers = [code.support() for code in self.codes]
        if self.num_layers == 1:
            return tf.constant(layers[0])
        index = np.array(list(itertools.product(*[range(len(s)) for s in layers])))
        return tuple(tf.constant(s[index[:, l]]) for l, s in enumerate(layers))


def check(config) -> None:
    """A discrete code's config (`codes.check`), and what a belief network cannot take."""
    codes_lib.check(config)
    m = config.model
    if not codes_lib.is_discrete(m.posterior.name) or len(m.latent_dims) == 1:
        return
    if m.label != "none":
        raise ConfigError(f"model.label={m.label!r} with a belief network of "
                          f"{len(m.latent_dims)} discrete layers: labels join one latent layer "
                          "only; use model.latent_dims of one layer, or model.label='none'")
    if m.network.name not in ("mlp",):
        raise ConfigError(f"model.network.name={m.network.name!r}: a belief network's layers are "
                          "dense; use model.network.name='mlp'")
