"""Pixel modes (``data.pixels``), chosen by name, and the image size and channel conversions
every source shares. Sources give uint8 images ``[N, H, W, C]``; a mode makes them float32:

- ``binary``: ``x > threshold`` (fixed), for every split;
- ``dynamic``: training pixels are resampled ``x ~ Bernoulli(intensity)`` every time a batch is
  drawn; validation and test are binarised once with a fixed seed, as in the literature;
- ``continuous``: intensities in [0, 1].

Each mode gives the training pipeline's per-batch transform (`PixelMode.train`, a stateless
seed per batch), an in-memory evaluation split's one-off pixels (`PixelMode.fixed`, NumPy) and
a streamed evaluation image's (`PixelMode.fixed_image`, a stateless seed from its index).
"""
import numpy as np
import tensorflow as tf

from tfvae.data import memory
from tfvae.registry import Registry

PIXEL_MODES = ("binary", "dynamic", "continuous")
PIXELS = Registry("pixel mode", field="data.pixels", plural="pixel modes")
# Seed of the one-off binarisation of validation and test images (fixed, as in the literature).
EVAL_BINARIZATION_SEED = 1


@PIXELS.register("continuous")
class Continuous:
    """Intensities in [0, 1], as the image holds them."""

    binarises = False  # pixels in {0, 1} (else intensities)

    def train(self, x, seed_pair, threshold):
        """A training batch of intensities ``x`` (float32 in [0, 1]) -> its pixels."""
        return x

    def fixed(self, x: np.ndarray, rng, threshold) -> np.ndarray:
        """An evaluation split's intensities -> its pixels, once (NumPy; ``rng`` a
        `np.random.Generator` where the mode draws)."""
        return x

    def fixed_image(self, x, seed_pair, threshold):
        """One streamed evaluation image -> its pixels, the same on every pass."""
        return x


@PIXELS.register("binary")
class Binary(Continuous):
    """x > threshold, for every split."""

    binarises = True

    def train(self, x, seed_pair, threshold):
        return tf.cast(x > threshold, tf.float32)

    def fixed(self, x, rng, threshold):
        return (x > threshold).astype(np.float32)

    def fixed_image(self, x, seed_pair, threshold):
        return tf.cast(x > threshold, tf.float32)


@PIXELS.register("dynamic")
class Dynamic(Continuous):
    """x ~ Bernoulli(intensity): drawn afresh for each training batch, once for evaluation."""

    binarises = True

    def train(self, x, seed_pair, threshold):
        noise = tf.random.stateless_uniform(tf.shape(x), seed=seed_pair)
        return tf.cast(noise < x, tf.float32)

    def fixed(self, x, rng, threshold):
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)

    def fixed_image(self, x, seed_pair, threshold):
        return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=seed_pair) < x, tf.float32)


def mode(c):
    """The pixel mode of ``config.data``."""
    return PIXELS.build(c.pixels)


def fixed_codes(images: np.ndarray, pixels: str, threshold: float, seed: int,
                chunk: int = 4096):
    """An evaluation split's final pixels, held compactly: ``(codes, scale)`` with uint8
    ``codes`` and pixels = float32(codes) / scale (scale 255 for intensities, 1 for binarised
    pixels, drawn once with ``seed`` where the mode draws). Made a chunk of images at a time,
    so that no float32 temporary spans the split."""
    mode = PIXELS.build(pixels)
    if not mode.binarises:  # the intensities are the pixels: keep the uint8 images
        return images, 255.0
    codes = memory.aligned_empty(images.shape, np.uint8)  # shared with TensorFlow
    rng = np.random.default_rng(seed)  # one stream over the chunks: the same draws as one call
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].astype(np.float32) / 255.0
        codes[i:i + chunk] = mode.fixed(x, rng, threshold)
    return codes, 1.0


def pixel_transform(c):
    """uint8 images -> float32 pixels of the training pipeline (``seed_pair``: this batch's
    dynamic binarisation)."""
    pixels = mode(c)

    def transform(images, seed_pair):
        return pixels.train(tf.cast(images, tf.float32) / 255.0, seed_pair, c.threshold)
    return transform


def resize(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """uint8 images at ``size`` x ``size`` (bilinear, antialiased); 0 keeps them as they are."""
    if size <= 0 or images.shape[1:3] == (size, size):
        return images
    if not len(images):  # e.g. data.validation_size = 0: an empty split of the new size
        return np.zeros((0, size, size) + images.shape[3:], images.dtype)
    parts = []
    for i in range(0, len(images), chunk):
        x = tf.image.resize(tf.cast(images[i:i + chunk], tf.float32), (size, size),
                            method="bilinear", antialias=True)
        parts.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
    return np.concatenate(parts)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 images to ``channels``: grey repeated into RGB, or RGB to its luma (the weights of
    `tf.image.rgb_to_grayscale`)."""
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    return np.round(luma)[..., None].astype(np.uint8)


def as_image(image, c, shape):
    """A source image uint8 ``[H, W, C]`` at the run's size and channel count (in a pipeline)."""
    if image.shape[-1] != shape[-1]:
        image = (tf.image.grayscale_to_rgb(image) if shape[-1] == 3
                 else tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))),
                              tf.uint8))
    if c.image_size:
        image = tf.image.resize(tf.cast(image, tf.float32), shape[:2], method="bilinear",
                                antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, shape)
