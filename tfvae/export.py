"""SavedModel export that samples, encodes, decodes and scores without tfvae (or TFP) installed.

Keras's whole-model ``save`` fails for models with TFP layers, so a `tf.Module` holds the model's
variables (not its layers) and `tf.function`s with fixed signatures::

    loaded = tf.saved_model.load(path)
    loaded.sample(tf.constant(16))["images"]                 # [16, H, W, C] means of p(x|z)
    loaded.encode(x)["loc"], loaded.encode(x)["scale"]       # q(z|x) parameters
    loaded.decode(z)["mean"]                                 # E[x|z]
    loaded.reconstruct(x)["images"]
    loaded.log_likelihood(x, tf.constant(1000))["log_likelihood"]   # IWAE bound, [B]
"""
import json
import os

import tensorflow as tf


class _Exported(tf.Module):
    def __init__(self, model):
        super().__init__(name="tfvae_export")
        # Variables only, not the Keras layers: keeps Keras's (failing) layer serialisation out.
        self.model_variables = list(model.variables)
        self.image_shape = tf.constant(model.image_shape, tf.int32)
        self.latent_dim = tf.constant(model.latent_dim, tf.int32)
        image_spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")
        latent_spec = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")
        vae = model

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_images")])
        def sample(num_images):
            return {"images": vae.sample(num_images)}

        @tf.function(input_signature=[image_spec])
        def encode(images):
            q = vae.encode(images, training=False)
            return {"loc": q.mean(), "scale": q.stddev()}

        @tf.function(input_signature=[latent_spec])
        def decode(z):
            px = vae.likelihood(z, training=False)
            return {"mean": px.mean(), "logits": vae.decode(z, training=False)}

        @tf.function(input_signature=[image_spec])
        def reconstruct(images):
            return {"images": vae.reconstruct(images)}

        @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")])
        def log_likelihood(images, num_samples):
            return {"log_likelihood": vae._iw_bound(images, num_samples, tf.constant(100))}

        self.sample, self.encode, self.decode = sample, encode, decode
        self.reconstruct, self.log_likelihood = reconstruct, log_likelihood


def export(model, path: str, config=None) -> str:
    """Writes a SavedModel of ``model`` to ``path`` (and the training config beside it)."""
    module = _Exported(model)
    signatures = {"serving_default": module.sample, "sample": module.sample,
                  "encode": module.encode, "decode": module.decode,
                  "reconstruct": module.reconstruct, "log_likelihood": module.log_likelihood}
    tf.saved_model.save(module, path, signatures=signatures)
    with open(os.path.join(path, "tfvae.json"), "w") as f:
        json.dump({"image_shape": list(model.image_shape), "latent_dim": model.latent_dim,
                   "config": json.loads(config.to_json()) if config is not None else None}, f,
                  indent=2)
    return path
