"""SavedModel export that samples, encodes, decodes and scores without tfvae (or TFP) installed.

Keras's whole-model ``save`` fails for models with TFP layers, so a `tf.Module` holds the model's
variables (not its layers) and `tf.function`s with fixed signatures::

    loaded = tf.saved_model.load(path)
    loaded.sample(tf.constant(16))["images"]                 # [16, H, W, C] means of p(x|z)
    loaded.sample(tf.constant(16), tf.constant(7, tf.int64))  # the same 16 images for seed 7
    loaded.encode(x)["loc"], loaded.encode(x)["scale"]       # q(z|x) mean and std (for a flow
                                                             # posterior: the flow's image of its
                                                             # base mean, and the base's std)
    loaded.decode(z)["mean"]                                 # E[x|z]
    loaded.reconstruct(x)["images"]
    loaded.log_likelihood(x, tf.constant(1000))["log_likelihood"]   # IWAE bound, [B]
    # building blocks of tfvae-sample, each with an explicit int64 seed:
    loaded.sample_latents(tf.constant(16), seed, tf.constant(0.8))["z"]   # z ~ p(z) at T = 0.8
    loaded.decode_sample(z, seed)["images"]                  # pixels x ~ p(x|z)
    loaded.encode_sample(x, seed)["z"]                       # z ~ q(z|x), any posterior

With several latent layers z is every layer concatenated, bottom first, ``[N, sum d_l]``
(``loaded.latent_dims`` and ``tfvae.json`` give the sizes); ``encode`` then gives each layer's
mean with its parents at their means.

Without a seed every call (and every process) draws new latents; with one, the draw is
reproducible. Bad arguments (a negative image count, k < 1) fail with a message naming them.
"""
import json
import os

import tensorflow as tf

from tfvae import storage
from tfvae.inference import importance


def _hold_model(module, model):
    """The model's variables, not its Keras layers (that keeps Keras's failing layer
    serialisation out), and its sizes as non-trainable variables (a SavedModel keeps
    variables, not constants)."""
    module.model_variables = list(model.variables)
    module.image_shape = tf.Variable(model.image_shape, trainable=False, dtype=tf.int32)
    module.latent_dim = tf.Variable(model.latent_dim, trainable=False, dtype=tf.int32)
    module.latent_dims = tf.Variable(model.latent_dims, trainable=False, dtype=tf.int32)


def _fresh_pair(calls):
    """Fresh randomness per call and per process when no seed is given: a stateless seed from
    the clock and a call counter (a stateful op's seed would be frozen into the graph, and every
    process loading the model would then draw the same "random" images)."""
    calls.assign_add(1)
    micros = tf.cast(tf.timestamp() * 1e6, tf.int64)
    return tf.cast(tf.stack([micros, calls.read_value()]) % (2 ** 31 - 1), tf.int32)


def _seed_pair(seed, salt: int):
    return tf.cast(tf.stack([seed % (2 ** 31 - 1), tf.constant(salt, tf.int64)]), tf.int32)


class _Exported(tf.Module):
    def __init__(self, model):
        super().__init__(name="tfvae_export")
        _hold_model(self, model)
        image_spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")
        vae = model
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="sample_calls")
        calls = self.calls

        def _sample(num_images, seed=None):
            tf.debugging.assert_non_negative(
                num_images, message="sample: num_images must be >= 0")
            pair = _fresh_pair(calls) if seed is None else _seed_pair(seed, 0)
            return {"images": vae.sample(num_images, seed=pair)}

        num_spec = tf.TensorSpec([], tf.int32, name="num_images")
        sample = tf.function(_sample)
        sample_unseeded = sample.get_concrete_function(num_spec)
        sample_seeded = sample.get_concrete_function(num_spec, tf.TensorSpec([], tf.int64, "seed"))

        @tf.function(input_signature=[num_spec, tf.TensorSpec([], tf.int64, name="seed"),
                                      tf.TensorSpec([], tf.float32, name="temperature")])
        def sample_latents(num_images, seed, temperature):
            tf.debugging.assert_non_negative(
                num_images, message="sample_latents: num_images must be >= 0")
            tf.debugging.assert_positive(
                temperature, message="sample_latents: temperature must be > 0")
            return {"z": vae.sample_latents(num_images, seed=_seed_pair(seed, 1),
                                            temperature=temperature)}

        self.sample, self.sample_latents = sample, sample_latents
        self.signature_functions = {"sample": sample_unseeded, "sample_seeded": sample_seeded}
        self._add_coding(vae, image_spec)
        _add_classify(self, model, image_spec)

    def _add_coding(self, vae, image_spec):
        """encode, decode (and their seeded draws), reconstruct and the IS bound."""
        latent_spec = tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")
        calls = self.calls

        @tf.function(input_signature=[image_spec])
        def encode(images):
            loc, scale = vae.code_statistics(vae.encode(images, training=False))
            return {"loc": loc, "scale": scale}

        @tf.function(input_signature=[latent_spec])
        def decode(z):
            px = vae.likelihood(z, training=False)
            return {"mean": px.mean(), "logits": vae.decode(z, training=False)}

        @tf.function(input_signature=[latent_spec, seed_spec])
        def decode_sample(z, seed):
            return {"images": tf.cast(vae.likelihood(z, training=False).sample(
                seed=_seed_pair(seed, 1)), tf.float32)}

        @tf.function(input_signature=[image_spec, seed_spec])
        def encode_sample(images, seed):
            return {"z": vae.join(vae.encode(images, training=False).sample(
                seed=_seed_pair(seed, 1)))}

        @tf.function(input_signature=[image_spec])
        def reconstruct(images):
            return {"images": vae.reconstruct(images)}

        @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")])
        def log_likelihood(images, num_samples):
            tf.debugging.assert_positive(
                num_samples, message="log_likelihood: num_samples (k) must be >= 1")
            return {"log_likelihood": importance.bound(vae, images, num_samples, 100,
                                                       _fresh_pair(calls))}

        self.encode, self.decode = encode, decode
        self.decode_sample, self.encode_sample = decode_sample, encode_sample
        self.reconstruct, self.log_likelihood = reconstruct, log_likelihood


def _add_classify(module, model, image_spec) -> None:
    """``classify(images)`` where the model can classify (q(y|x), or a mixture prior's
    responsibilities): probabilities and the most probable label."""
    if not model.can_classify:
        return

    @tf.function(input_signature=[image_spec])
    def classify(images):
        logits = model.classify(images, training=False)
        return {"probabilities": tf.nn.softmax(logits),
                "labels": tf.argmax(logits, -1, output_type=tf.int32)}
    module.classify = classify


class _ConditionalExported(tf.Module):
    """The SavedModel of a model whose networks read the label y: every function takes the
    images' labels ``[N]`` (int32, 0..K-1), and ``sample_conditional(labels, seed)`` draws
    images of given classes; ``sample(n)`` draws the classes uniformly. A model that can
    classify adds ``classify(images)`` (probabilities and the most probable label); its
    ``log_likelihood`` is log p(x|y) of the labels given."""

    def __init__(self, model):
        super().__init__(name="tfvae_export")
        _hold_model(self, model)
        self.num_classes = tf.Variable(model.num_classes, trainable=False, dtype=tf.int32)
        label_spec = tf.TensorSpec([None], tf.int32, name="labels")
        seed_spec = tf.TensorSpec([], tf.int64, name="seed")
        num_spec = tf.TensorSpec([], tf.int32, name="num_images")
        vae, k = model, model.num_classes
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="sample_calls")
        pair, checked = self._pair, self._checked

        def _sample(num_images, seed=None):
            tf.debugging.assert_non_negative(num_images, message="sample: num_images must be >= 0")
            labels = tf.random.stateless_uniform([num_images], pair(seed, 2), maxval=k,
                                                 dtype=tf.int32)
            return {"images": vae.sample(num_images, seed=pair(seed, 0), labels=labels),
                    "labels": labels}

        sample = tf.function(_sample)
        self.signature_functions = {
            "sample": sample.get_concrete_function(num_spec),
            "sample_seeded": sample.get_concrete_function(num_spec, seed_spec)}

        @tf.function(input_signature=[label_spec, seed_spec])
        def sample_conditional(labels, seed):
            labels = checked(labels)
            return {"images": vae.sample(tf.shape(labels)[0], seed=pair(seed, 0), labels=labels)}

        @tf.function(input_signature=[num_spec, seed_spec,
                                      tf.TensorSpec([], tf.float32, name="temperature")])
        def sample_latents(num_images, seed, temperature):
            return {"z": vae.sample_latents(num_images, seed=pair(seed, 1),
                                            temperature=temperature)}

        self.sample, self.sample_conditional, self.sample_latents = (
            sample, sample_conditional, sample_latents)
        image_spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")
        self._add_coding(vae, image_spec, label_spec, seed_spec)
        _add_classify(self, model, image_spec)

    def _pair(self, seed, salt):
        return _fresh_pair(self.calls) if seed is None else _seed_pair(seed, salt)

    def _checked(self, labels):
        k = self.num_classes
        tf.debugging.assert_non_negative(labels, message="labels must be in 0..K-1")
        tf.debugging.assert_less(labels, k, message="labels must be in 0..K-1")
        return labels

    def _add_coding(self, vae, image_spec, label_spec, seed_spec):
        """encode, decode, decode_sample, reconstruct and the IS bound, each given labels."""
        latent_spec = tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")
        pair, checked = self._pair, self._checked

        @tf.function(input_signature=[latent_spec, label_spec])
        def decode(z, labels):
            given = vae.given(checked(labels))
            return {"mean": given.likelihood(z, training=False).mean(),
                    "logits": given.decode(z, training=False)}

        @tf.function(input_signature=[latent_spec, label_spec, seed_spec])
        def decode_sample(z, labels, seed):
            return {"images": tf.cast(vae.given(checked(labels)).likelihood(
                z, training=False).sample(seed=pair(seed, 1)), tf.float32)}

        @tf.function(input_signature=[image_spec, label_spec])
        def encode(images, labels):
            loc, scale = vae.code_statistics(
                vae.encode(images, training=False, labels=checked(labels)))
            return {"loc": loc, "scale": scale}

        @tf.function(input_signature=[image_spec, label_spec])
        def reconstruct(images, labels):
            return {"images": vae.reconstruct(images, checked(labels))}

        @tf.function(input_signature=[image_spec, label_spec,
                                      tf.TensorSpec([], tf.int32, name="num_samples")])
        def log_likelihood(images, labels, num_samples):
            tf.debugging.assert_positive(
                num_samples, message="log_likelihood: num_samples (k) must be >= 1")
            return {"log_likelihood": importance.bound(vae, images, num_samples, 100,
                                                       pair(None, 0), checked(labels))}

        self.decode, self.decode_sample, self.encode = decode, decode_sample, encode
        self.reconstruct, self.log_likelihood = reconstruct, log_likelihood


def export(model, path: str, config=None) -> str:
    """Writes a SavedModel of ``model`` to ``path`` (and the training config beside it)."""
    if model.networks_read_labels:
        module = _ConditionalExported(model)
        signatures = {"serving_default": module.signature_functions["sample"],
                      **module.signature_functions,
                      "sample_conditional": module.sample_conditional,
                      "encode": module.encode, "decode": module.decode,
                      "reconstruct": module.reconstruct, "log_likelihood": module.log_likelihood,
                      "sample_latents": module.sample_latents,
                      "decode_sample": module.decode_sample}
        if model.can_classify:
            signatures["classify"] = module.classify
        return _write(module, path, signatures, model, config)
    module = _Exported(model)
    signatures = {"serving_default": module.signature_functions["sample"],
                  **module.signature_functions,
                  "encode": module.encode, "decode": module.decode,
                  "reconstruct": module.reconstruct, "log_likelihood": module.log_likelihood,
                  "sample_latents": module.sample_latents, "decode_sample": module.decode_sample,
                  "encode_sample": module.encode_sample}
    if model.can_classify:
        signatures["classify"] = module.classify
    return _write(module, path, signatures, model, config)


def _write(module, path, signatures, model, config) -> str:
    """The SavedModel is written to a temporary folder beside ``path`` and swapped in whole
    (`tfvae.storage.atomic_dir`): a kill or a full disk leaves the old one, or none."""
    with storage.atomic_dir(path) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        _write_card(tmp, model, config)
    return path


def _write_card(path, model, config) -> None:
    with open(os.path.join(path, "tfvae.json"), "w") as f:
        json.dump({"image_shape": list(model.image_shape), "latent_dim": model.latent_dim,
                   "latent_dims": list(model.latent_dims),
                   "num_classes": model.num_classes,
                   "config": json.loads(config.to_json()) if config is not None else None}, f,
                  indent=2)
