"""Several stochastic layers: the networks and distributions of a hierarchical VAE.

Latents z = (z_1, ..., z_L), z_1 nearest x (``model.latent_dims``, bottom first). Both the model
and the proposal run top-down, as the two-level HVAE of Tomczak and Welling [1]:

    p(x, z) = p(z_L) prod_{l<L} p(z_l | z_{l+1}) p(x | z_1, ..., z_L),
    q(z | x) = q(z_L | x) prod_{l<L} q(z_l | x, z_{l+1}),

with p(z_L) any registered prior, every other factor a diagonal Gaussian whose mean and scale a
network gives (the scale through ``model.posterior.scale``, e.g. the authors' log-variance
clamped to [-6, 2]). The ELBO's rate splits by layer, R = sum_l R_l,

    R_L = E_q KL(q(z_L|x) || p(z_L)),
    R_l = E_{q(z_{l+1}|x)} KL(q(z_l | x, z_{l+1}) || p(z_l | z_{l+1})),   l < L,

each KL analytic given the sampled parent (two Gaussians; the top one where TFP registers it),
else the one-sample log q - log p the authors use: the same expectation, less variance.

The networks follow the authors' HVAE for ``model.network.name='gated_mlp'`` and generalise it
to any registered network, from the network's own layer kind (``unit``: a gated or a plain dense
layer of ``hidden[-1]`` units):

| factor | network |
| --- | --- |
| q(z_L | x) | the network's encoder (as in the one-layer VAE) |
| q(z_l | x, z_{l+1}) | [x-features(x), unit(z_{l+1})] -> unit -> linear |
| p(z_l | z_{l+1}) | units of ``hidden`` -> linear |
| p(x | z_1..z_L) | [unit(z_1), ..., unit(z_L)] -> the network's decoder after its first layer |

x-features are a unit on the flattened image (dense networks), the encoder's convolutions then a
unit (cnn), or the authors' gated convolutions, flattened (gated_cnn, their convHVAE). With one
layer the decoder is exactly the one-layer VAE's: its first layer is the unit.

Shapes: each z_l is ``[..., d_l]`` (leading sample and batch axes); a structure of latents is a
tuple, bottom first; the flat view (`join`) concatenates the layers bottom first.

References:
  [1] Tomczak and Welling (2018). VAE with a VampPrior. AISTATS. (Code: jmtomczak/vae_vampprior,
      models/HVAE_2level.py.)
  [2] Sonderby, Raiko, Maaloe, Sonderby and Winther (2016). Ladder Variational Autoencoders.
      NeurIPS.
"""
from typing import List, Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tfvae import precision as precision_lib
from tfvae.distributions import codes, posteriors
from tfvae.errors import ConfigError
from tfvae.models import networks
from tfvae.registry import Registry

tfd = tfp.distributions

UNITS = Registry("hierarchy layer kind", field="model.network.name")


class Unit:
    """What a network contributes to a hierarchy: its layer kind and its heads' initialiser."""

    def __init__(self, layer, head_initializer):
        self.layer, self.head_initializer = layer, head_initializer

    def x_features(self, block, image_shape, units, name) -> keras.Sequential:
        """x -> [B, units]: a unit on the flattened image."""
        return keras.Sequential([keras.layers.InputLayer(image_shape), keras.layers.Flatten(),
                                 self.layer(block, units, f"{name}_x")], name=name)


def _dense_unit(block, units, name):
    return keras.layers.Dense(units, activation=block.activation, name=name)


class ConvUnit(Unit):
    """The cnn network: x-features are its encoder's stride-2 convolutions, then a unit."""

    def x_features(self, block, image_shape, units, name) -> keras.Sequential:
        layers = [keras.layers.InputLayer(image_shape)]
        for i, ch in enumerate(block.conv_channels):
            layers.append(keras.layers.Conv2D(ch, block.kernel_size, strides=2, padding="same",
                                              activation=block.activation, name=f"{name}_conv{i}"))
        layers += [keras.layers.Flatten(), self.layer(block, units, f"{name}_x")]
        return keras.Sequential(layers, name=name)


class GatedConvUnit(Unit):
    """The gated_cnn network: x-features are the authors' gated convolutions of q(z1|x, z2),
    flattened (as in their convHVAE)."""

    def x_features(self, block, image_shape, units, name) -> keras.Sequential:
        return keras.Sequential(
            [keras.layers.InputLayer(image_shape)]
            + networks.gated_convolutions(networks.GATED_CNN_FEATURES, name)
            + [keras.layers.Flatten()], name=name)


def _gated_unit(block, units, name):
    return networks.GatedDense(units, name=name)


UNITS.register("mlp")(Unit(_dense_unit, "glorot_uniform"))
UNITS.register("cnn")(ConvUnit(_dense_unit, "glorot_uniform"))
UNITS.register("gated_mlp")(Unit(_gated_unit, networks.he_normal))
UNITS.register("gated_cnn")(GatedConvUnit(_gated_unit, networks.he_normal))


def _initializer(unit):
    init = unit.head_initializer
    return init() if callable(init) else init


class GaussianNet(keras.layers.Layer):
    """``inputs -> N(mu, diag sigma^2)`` over ``[..., dim]``: a stack of units on the
    concatenated inputs, then a linear layer to the head's parameters. Inputs may carry any
    leading axes (broadcast against each other)."""

    def __init__(self, unit, block, dim, hidden: Sequence[int], scale, **kwargs):
        super().__init__(**kwargs)
        self.stack = [unit.layer(block, u, f"{self.name}_h{i}") for i, u in enumerate(hidden)]
        self.out = keras.layers.Dense(2 * dim, kernel_initializer=_initializer(unit),
                                      name=f"{self.name}_out", **networks.output_dtype())
        self.head = posteriors.GaussianPosterior(dim, scale=scale, name=f"{self.name}_head")

    def params(self, inputs: List[tf.Tensor], training=None):
        h = inputs[0] if len(inputs) == 1 else tf.concat(
            [tf.cast(t, inputs[-1].dtype) for t in _broadcast(inputs)], -1)
        for layer in self.stack:
            h = layer(h)
        return tf.cast(self.out(h), tf.float32)

    def distribution(self, inputs, training=None) -> tfd.Distribution:
        return self.head.distribution(self.params(inputs, training))

    def call(self, inputs, training=None):
        return self.params(list(inputs), training)


def _broadcast(tensors):
    """Broadcasts the leading (sample, batch) axes of ``[..., d_i]`` tensors."""
    lead = tf.shape(tensors[0])[:-1]
    for t in tensors[1:]:
        lead = tf.broadcast_dynamic_shape(lead, tf.shape(t)[:-1])
    return [tf.broadcast_to(t, tf.concat([lead, tf.shape(t)[-1:]], 0)) for t in tensors]


class Ladder(keras.layers.Layer):
    """The parts of a hierarchy below its top layer: for each l < L the proposal's
    q(z_l | x, z_{l+1}) and the model's p(z_l | z_{l+1}), and the decoder p(x | z_1..z_L).

    The top layer's q(z_L | x) (an encoder and a posterior head) and prior p(z_L) stay the
    VAE's own parts, so that a VampPrior's pseudo-inputs pass through q(z_L | x). With
    ``num_classes`` K > 0 (a model with labels, `tfvae.labelled`), a one-hot y ``[B, K]`` joins
    the inputs of each q(z_l | x, z_{l+1}, y) and of each layer's branch of p(x | z_1..z_L, y);
    p(z_l | z_{l+1}) does not read it (as p(z) does not in a conditional VAE).
    """

    def __init__(self, network_block, latent_dims: Sequence[int], image_shape, param_shape,
                 scale: str, precision: str = "float32", num_classes: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.latent_dims = tuple(int(d) for d in latent_dims)
        self.image_shape, self.param_shape = tuple(image_shape), tuple(param_shape)
        block = network_block
        if not block.hidden:
            raise ConfigError("model.network.hidden=() : a hierarchy needs at least one hidden "
                              "layer width (each layer's networks use hidden[-1] units)")
        unit = UNITS.get(block.name)
        width = int(block.hidden[-1])
        below = range(len(self.latent_dims) - 1)
        with precision_lib.scope(precision):
            # q(z_l | x, z_{l+1}): x-features and z_{l+1} each through a unit, then one joint.
            self.x_features = [unit.x_features(block, self.image_shape, width, f"q_z{l + 1}_x")
                               for l in below]
            self.z_features = [unit.layer(block, width, f"q_z{l + 1}_z{l + 2}") for l in below]
            self.q_nets = [GaussianNet(unit, block, self.latent_dims[l], (width,), scale,
                                       name=f"q_z{l + 1}") for l in below]
            self.p_nets = [GaussianNet(unit, block, self.latent_dims[l], tuple(block.hidden),
                                       scale, name=f"p_z{l + 1}") for l in below]
            # p(x | z): one unit per layer, then the decoder after its first layer.
            self.x_branches = [unit.layer(block, width, f"p_x_z{l + 1}")
                               for l in range(len(self.latent_dims))]
            trunk = block.copy_and_resolve_references()
            trunk.hidden = tuple(block.hidden[:-1])
            self.trunk = networks.DECODERS.create(
                trunk, latent_dim=width * len(self.latent_dims), image_shape=self.param_shape)
        if precision_lib.is_low(precision):
            networks.to_float32(self.trunk)
        self._create_weights()

    def _create_weights(self):
        """Runs every network once, so that all weights exist from the start (checkpoints,
        optimiser slots and parameter groups see them all)."""
        z = tuple(tf.zeros([1, d]) for d in self.latent_dims)
        x = tf.zeros((1,) + self.image_shape)
        labels = tf.zeros([1, self.num_classes]) if self.num_classes else None
        self.decode(z, labels=labels)
        self.conditionals(z)
        for l, net in enumerate(self.q_nets):
            net.params([self.x_features[l](x), self.z_features[l](z[l + 1])]
                       + ([labels] if self.num_classes else []))

    # ------------------------------------------------------------------ the proposal
    def proposal(self, x, top: tfd.Distribution, training=None,
                 labels=None) -> "HierarchicalPosterior":
        """q(z | x) (q(z | x, y) given one-hot ``labels`` ``[B, K]``) from the top layer's."""
        features = [f(x, training=training) for f in self.x_features]
        extra = [] if labels is None else [labels]
        return HierarchicalPosterior(top, [
            (lambda parent, l=l: self.q_nets[l].distribution(
                [features[l], self.z_features[l](parent)] + extra, training))
            for l in range(len(self.q_nets))])

    def conditionals(self, z, training=None) -> List[tfd.Distribution]:
        """p(z_l | z_{l+1}) for l < L given the structure ``z``, bottom first."""
        return [self.p_nets[l].distribution([z[l + 1]], training) for l in range(len(self.p_nets))]

    def log_conditionals(self, z, training=None) -> tf.Tensor:
        """sum_{l<L} log p(z_l | z_{l+1})."""
        return tf.add_n([p.log_prob(z[l]) for l, p in enumerate(self.conditionals(z, training))]
                        + [tf.zeros(tf.shape(z[0])[:-1])])

    def sample_down(self, top, seed=None, temperature=1.0) -> Tuple[tf.Tensor, ...]:
        """Ancestral draws z_{L-1}, ..., z_1 from p(z_l | z_{l+1}) below a given top layer,
        each Gaussian's scale multiplied by ``temperature``; returns the whole structure."""
        z = [None] * (len(self.latent_dims) - 1) + [top]
        for l in reversed(range(len(self.p_nets))):
            p = self.p_nets[l].distribution([z[l + 1]])
            draw = p.sample(seed=None if seed is None else
                            tf.random.experimental.stateless_fold_in(seed, l + 1))
            z[l] = p.mean() + temperature * (draw - p.mean())
        return tuple(z)

    # ------------------------------------------------------------------ the decoder
    def decode(self, z, training=None, labels=None):
        """Likelihood parameters ``[..., H, W, C * P]`` for the structure ``z`` (and one-hot
        ``labels`` ``[B, K]``, broadcast over z's leading axes)."""
        lead = tf.shape(z[0])[:-1]
        flat = [tf.reshape(t, [-1, d]) for t, d in zip(z, self.latent_dims)]
        if labels is not None:  # y joins each layer's branch
            y = tf.broadcast_to(labels, tf.concat([lead, [self.num_classes]], 0))
            y = tf.reshape(tf.cast(y, flat[0].dtype), [-1, self.num_classes])
            flat = [tf.concat([t, y], -1) for t in flat]
        h = tf.concat([b(t) for b, t in zip(self.x_branches, flat)], -1)
        out = self.trunk(h, training=training)
        return tf.reshape(tf.cast(out, tf.float32), tf.concat([lead, self.param_shape], 0))

    def generative_variables(self):
        return sum((n.trainable_variables for n in self.p_nets + self.x_branches + [self.trunk]),
                   [])

    def inference_variables(self):
        return sum((n.trainable_variables
                    for n in self.x_features + self.z_features + self.q_nets), [])

    def split(self, flat):
        """``[..., sum d_l]`` -> the structure (bottom first)."""
        return tuple(tf.split(flat, list(self.latent_dims), axis=-1))

    def call(self, inputs):
        raise TypeError("use the Ladder's methods (proposal, decode, conditionals)")


class HierarchicalPosterior:
    """q(z | x) = q(z_L | x) prod_{l<L} q(z_l | x, z_{l+1}) as a TFP joint distribution
    (`tfd.JointDistributionCoroutine`, sampled top-down), seen bottom first: ``sample`` gives
    the tuple ``(z_1, ..., z_L)``, ``log_prob`` takes it. ``conditionals(z)`` are the factors at
    the given parents (per-layer rates need them)."""

    def __init__(self, top: tfd.Distribution, below):
        self.top, self.below = top, list(below)  # below[l]: z_{l+1} -> q(z_l | x, z_{l+1})

        def top_down():
            z = yield tfd.JointDistributionCoroutine.Root(top)
            for f in reversed(self.below):
                z = yield f(z)

        self.joint = tfd.JointDistributionCoroutine(top_down)

    reparameterization_type = tfd.FULLY_REPARAMETERIZED

    @property
    def num_layers(self) -> int:
        return len(self.below) + 1

    def sample(self, sample_shape=(), seed=None) -> Tuple[tf.Tensor, ...]:
        return tuple(reversed(self.joint.sample(sample_shape, seed=seed)))

    def log_prob(self, z) -> tf.Tensor:
        return self.joint.log_prob(list(reversed(z)))

    def conditionals(self, z) -> List[tfd.Distribution]:
        """The factors at the parents in ``z``, bottom first: q(z_l | x, z_{l+1}), ..., q(z_L|x)."""
        return [f(z[l + 1]) for l, f in enumerate(self.below)] + [self.top]

    def code_statistics(self):
        """``(loc, scale)`` flat ``[B, sum d_l]``: each layer's mean with its parents at their
        means (top-down), and its standard deviation there."""
        loc, scale = posteriors.code_statistics(self.top)
        locs, scales = [loc], [scale]
        for f in reversed(self.below):
            q = f(locs[0])
            locs.insert(0, q.mean())
            scales.insert(0, q.stddev())
        return tf.concat(locs, -1), tf.concat(scales, -1)


def check(config) -> None:
    """A hierarchy's config: Gaussian layers, a network with a layer kind, an estimator that
    handles a structured proposal."""
    m = config.model
    if len(m.latent_dims) < 2 or codes.is_discrete(m.posterior.name):
        return  # one layer, or a belief network (`tfvae.models.belief.check`)
    if m.posterior.name != "gaussian":
        raise ConfigError(
            f"model.posterior.name={m.posterior.name!r} with model.latent_dims="
            f"{tuple(m.latent_dims)}: every layer of a hierarchy is a diagonal Gaussian; use "
            "model.posterior.name='gaussian' (its scale sets each layer's)")
    UNITS.get(m.network.name)
    if config.estimator.name == "hybrid":
        raise ConfigError(
            "estimator.name='hybrid' needs a mixture posterior, and a hierarchy's layers are "
            "Gaussian; use 'reparameterized', 'iwae', 'dreg' or 'score_function'")
