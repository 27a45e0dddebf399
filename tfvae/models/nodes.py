"""The latent nodes of a model: each latent variable with its family, its parents and how its
gradient is obtained, as Pyro's sample sites say it (reparameterised, score function with its
baseline, relaxed, or summed out by enumeration), in TFP/Keras terms.

A tfvae model (`tfvae.models.model.VAE`, the one model class) is a small graph of such nodes over the
images x. ``model.nodes`` lists them, top first:

| node | family | parents | gradient |
| --- | --- | --- | --- |
| y, the label (`tfvae.models.labels`) | categorical | | observed, enumerated, score function or relaxed |
| z_L, the top latent | the posterior's (``gaussian``, ``mog``, ``iaf``, ...) | x (and y) | the estimator's |
| z_l, l < L (a chain) | gaussian | x, z_{l+1} (and y) | the estimator's |

Two objects carry the nodes' computation. The latent structure below (`Layer`: one latent z
with any posterior; `Chain`: z_1..z_L, each a diagonal Gaussian, `tfvae.models.hierarchy`) gives the
proposal, the decoder, the conditional priors and the rates; the label role
(`tfvae.models.labels.LABELS`, ``config.model.label``) says what y is and how a batch trains. Both
are plain Python objects over the model's Keras layers, which the model itself holds (their
attribute names are the checkpoints' object paths, so a node type adds no path of its own).

Labels ``labels`` are the node y's value where it is observed: one-hot ``[B, K]`` (or relaxed
one-hot) for the roles whose networks read y, or None.
"""
from typing import NamedTuple, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.distributions import posteriors
from tfvae.models import networks

tfd = tfp.distributions

# How a node's gradient is obtained (``Node.gradient``).
GRADIENTS = ("reparameterized", "score_function", "enumerated", "relaxed", "observed")


class Node(NamedTuple):
    """One variable of the model: ``name`` (``y``, ``z1`` ...), its distribution ``family``, its
    ``parents`` (other nodes' names, and ``x`` for the proposal's input), ``gradient`` (one of
    `GRADIENTS`, with the estimator's words in ``detail``: its baseline, its relaxation), and
    whether its proposal is ``reparameterizable``."""

    name: str
    family: str
    parents: Tuple[str, ...]
    gradient: str
    detail: str = ""
    reparameterizable: bool = True


def describe(node: Node) -> str:
    """One line for a person: ``z2 ~ gaussian | x, y: reparameterized (path-wise)``."""
    parents = f" | {', '.join(node.parents)}" if node.parents else ""
    detail = f" ({node.detail})" if node.detail else ""
    return f"{node.name} ~ {node.family}{parents}: {node.gradient}{detail}"


class Layer:
    """One latent z with any posterior head: q(z|x) is the encoder then the head, p(z) the
    prior, p(x|z) the decoder then the likelihood head (with one-hot y joined to the networks'
    inputs when the label role says so)."""

    num_layers = 1
    parts = {}  # Keras layers of its own, which the model holds as attributes

    def __init__(self, latent_dim: int):
        self.latent_dims = (int(latent_dim),)

    # ------------------------------------------------------------------ the proposal
    def encode_top(self, model, x, training=None, labels=None, copies: int = 1):
        """q(z_L | x) (q(z_L | x, y) given one-hot ``labels``). ``copies`` > 1 says that x is
        that many class-major copies of one batch (as enumerating y makes it): the x path of
        q(z|x,y) then runs once (`networks.call_joined`)."""
        head = model.posterior_head
        if labels is None:
            return head.distribution(model.encoder(x, training=training))
        if model.label_input == "channels":  # K constant image channels
            shape = tf.concat([tf.shape(x)[:-1], [model.num_classes]], 0)
            inputs = tf.concat([x, tf.broadcast_to(labels[:, None, None, :], shape)], -1)
        elif copies > 1:
            once = x[:tf.shape(x)[0] // copies]
            return head.distribution(networks.call_joined(model.encoder, once, labels,
                                                          training=training))
        else:  # joined to the features where the encoder flattens x
            inputs = [x, labels]
        return head.distribution(model.encoder(inputs, training=training))

    def encode(self, model, x, training=None, labels=None, copies: int = 1):
        return self.encode_top(model, x, training, labels, copies)

    def posterior_example(self, model, labels=None) -> tfd.Distribution:
        """q for one all-zero parameter vector: its type and reparameterisation say what an
        estimator may do."""
        head = model.posterior_head
        return head.distribution(tf.zeros([1, head.params_size]))

    # ------------------------------------------------------------------ the model
    def decode(self, model, z, training=None, labels=None):
        """Likelihood parameters ``[..., H, W, C * P]`` for latents ``[..., L]``."""
        lead = tf.shape(z)[:-1]
        width = self.latent_dims[0]
        if labels is not None:  # p(x | z, y): y appended to z
            k = model.num_classes
            y = tf.broadcast_to(labels, tf.concat([lead, [k]], 0))
            z, width = tf.concat([z, y], -1), width + k
        logits = model.decoder(tf.reshape(z, [-1, width]), training=training)
        return tf.reshape(logits, tf.concat([lead, model.param_shape], 0))

    def log_prior_fn(self, model, log_top, training=False):
        """``z -> log p(z)`` from the top layer's ``log_top``."""
        return log_top

    def rates(self, model, q, z, top_rate):
        """Each layer's rate, bottom first (here one: ``top_rate(q, z)``)."""
        return [top_rate(q, z)]

    def rate_names(self):
        return ()

    def conditional_priors(self, model, z):
        """p(z_l | z_{l+1}), l < L, at the parents in ``z``: none for one layer."""
        return []

    def code_statistics(self, q):
        """``(loc, scale)`` of the proposal ``q``, flat (`posteriors.code_statistics`)."""
        return posteriors.code_statistics(q)

    def sample_latents(self, model, n, seed=None, temperature=1.0):
        return model.prior.sample(n, seed=seed, temperature=temperature)

    def join(self, z):
        return z

    def split(self, flat):
        return flat

    def variables(self, model):
        """``(generative, inference)`` trainable variables of the latent structure."""
        return (model.decoder.trainable_variables + model.likelihood_head.trainable_variables
                + model.prior.trainable_variables,
                model.encoder.trainable_variables + model.posterior_head.trainable_variables)

    def nodes(self, model, gradient: str, detail: str, label_parent: bool):
        q = self.posterior_example(model)
        return (Node("z", model.posterior_name or "gaussian",
                     ("x", "y") if label_parent else ("x",), gradient, detail,
                     q.reparameterization_type == tfd.FULLY_REPARAMETERIZED),)


class Chain(Layer):
    """z_1 (nearest x) ... z_L, each a diagonal Gaussian (`tfvae.models.hierarchy`): q(z_L|x) and p(z_L)
    as a `Layer`'s, and the `hierarchy.Ladder` (in the decoder's place) holding
    q(z_l | x, z_{l+1}), p(z_l | z_{l+1}) and p(x | z_1..z_L). z is the tuple of layers, bottom
    first; its flat view (`join`) concatenates them."""

    def __init__(self, latent_dims, kl_mode: str = "auto"):
        self.latent_dims = tuple(int(d) for d in latent_dims)
        self.num_layers = len(self.latent_dims)
        self.kl_mode = kl_mode

    def encode(self, model, x, training=None, labels=None, copies: int = 1):
        """q(z_1, ..., z_L | x) (given y), sampled top-down."""
        return model.decoder.proposal(x, self.encode_top(model, x, training, labels, copies),
                                      training, labels=labels)

    def posterior_example(self, model, labels=None):
        x = tf.zeros((1,) + model.image_shape)
        if model.label.conditions_networks:
            labels = tf.zeros([1, model.num_classes])
        return self.encode(model, x, training=False, labels=labels)

    def decode(self, model, z, training=None, labels=None):
        return model.decoder.decode(self.split(z) if tf.is_tensor(z) else z, training=training,
                                    labels=labels)

    def log_prior_fn(self, model, log_top, training=False):
        """log p(z_L) + sum_{l<L} log p(z_l | z_{l+1})."""
        return lambda z: log_top(z[-1]) + model.decoder.log_conditionals(z, training)

    def rates(self, model, q, z, top_rate):
        """R_l per example, bottom first: each layer's KL to its conditional prior at the
        sampled parents, analytic (Gaussians) unless ``model.kl='mc'``; the top layer's by
        ``top_rate``. Averaged over the S samples of ``z``."""
        out = []
        for l, (q_l, p_l) in enumerate(zip(q.conditionals(z), model.decoder.conditionals(z))):
            if self.kl_mode == "mc":
                kl = q_l.log_prob(z[l]) - p_l.log_prob(z[l])
            else:
                kl = tfd.kl_divergence(q_l, p_l)
            out.append(tf.reduce_mean(kl, axis=0))
        return out + [top_rate(q.top, z[-1])]

    def rate_names(self):
        return tuple(f"rate_z{l + 1}" for l in range(self.num_layers))

    def conditional_priors(self, model, z):
        return model.decoder.conditionals(z)

    def code_statistics(self, q):  # the structured proposal's own, parents at their means
        return q.code_statistics()

    def sample_latents(self, model, n, seed=None, temperature=1.0):
        """z_L ~ p(z_L), then z_l ~ p(z_l | z_{l+1}) down to z_1, each at ``temperature``;
        flat ``[n, sum d_l]``."""
        top = model.prior.sample(n, seed=seed, temperature=temperature)
        return self.join(model.decoder.sample_down(top, seed=seed, temperature=temperature))

    def join(self, z):
        return tf.concat(z, axis=-1)

    def split(self, flat):
        return tuple(tf.split(flat, list(self.latent_dims), axis=-1))

    def variables(self, model):
        ladder = model.decoder
        return (ladder.generative_variables() + model.likelihood_head.trainable_variables
                + model.prior.trainable_variables,
                model.encoder.trainable_variables + ladder.inference_variables()
                + model.posterior_head.trainable_variables)

    def nodes(self, model, gradient: str, detail: str, label_parent: bool):
        extra = ("y",) if label_parent else ()
        top = Node(f"z{self.num_layers}", model.posterior_name or "gaussian",
                   ("x",) + extra, gradient, detail)
        return (top,) + tuple(
            Node(f"z{l + 1}", "gaussian", ("x", f"z{l + 2}") + extra, gradient, detail)
            for l in reversed(range(self.num_layers - 1)))


def latents_for(latent_dims, kl_mode: str = "auto") -> Layer:
    """The latent structure of ``model.latent_dims``: one `Layer`, or a `Chain` of several."""
    dims = tuple(int(d) for d in latent_dims)
    return Layer(dims[0]) if len(dims) == 1 else Chain(dims, kl_mode)
