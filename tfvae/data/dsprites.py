"""dSprites (Matthey, Higgins, Hassabis and Lerchner 2017), rendered from its factors: the
``dsprites`` source (``data.source='dsprites'``) and the ground truth the structure metrics draw
images from (`tfvae.metrics`).

The published set is the full grid of five factors, 737,280 binary 64 x 64 images, stored with
the last factor fastest:

| factor | values |
| --- | --- |
| shape | square, ellipse, heart (the label: ``data.labels`` reads it) |
| scale | 6, linearly 0.5 .. 1 |
| orientation | 40, linearly 0 .. 2 pi (both ends: 0 and 2 pi are the same picture) |
| position_x, position_y | 32 each, linearly 0 .. 1 |

Here every image is drawn from its factor values when a batch needs it (`render`, in
TensorFlow, inside the input pipeline), so nothing is built or stored: a run, or a metric that
needs images of chosen factors (FactorVAE's score), draws any combination. Where the published
file ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` lies in ``data.data_dir``, its images are
read instead (3 GB in memory), indexed the same way.

How the rendering differs from the published sprites (whose drawing code is not public): a pixel
is on when its centre lies inside the shape (no anti-aliasing, as the published images are
binary); at scale 1 the square's side is 20 pixels, the ellipse's axes 20 and 10, the heart (the
curve (u^2 + v^2 - 1)^3 = u^2 v^3) about 20 wide; the centre moves over pixels 15 .. 49 in x and
y (position 0 top-left), so a shape at full scale stays inside the frame at any orientation;
orientation turns the shape anticlockwise about its centre.
"""
import os
from typing import Tuple

import numpy as np
import tensorflow as tf

from tfvae.data import splits as splits_lib
from tfvae.data.sources import SOURCES, Source
from tfvae.errors import ConfigError

NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
NUM_VALUES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SIZE = 64
NUM_IMAGES = int(np.prod(NUM_VALUES))  # 737,280
PUBLISHED_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_STRIDES = tuple(int(np.prod(NUM_VALUES[k + 1:])) for k in range(len(NUM_VALUES)))
_HALF_SIZE = 10.0        # pixels, at scale 1
_CENTRES = (15.0, 49.0)  # the centre's range in pixels


def classes_of(index) -> np.ndarray:
    """Factor classes ``[N, 5]`` of grid indices ``[N]`` (the published order)."""
    index = np.asarray(index, np.int64)
    return np.stack([(index // s) % v for s, v in zip(_STRIDES, NUM_VALUES)], -1)


def index_of(classes) -> np.ndarray:
    """Grid indices ``[N]`` of factor classes ``[N, 5]``."""
    return np.asarray(classes, np.int64) @ np.asarray(_STRIDES, np.int64)


def values_of(classes) -> np.ndarray:
    """Factor values ``[N, 5]`` (shape 1..3, scale, orientation in radians, x, y in [0, 1])."""
    c = np.asarray(classes, np.float64)
    return np.stack([c[:, 0] + 1, 0.5 + 0.1 * c[:, 1], c[:, 2] * 2 * np.pi / 39,
                     c[:, 3] / 31, c[:, 4] / 31], -1)


def render(classes) -> tf.Tensor:
    """uint8 images ``[N, 64, 64, 1]`` (0 or 255) of factor classes ``[N, 5]`` (int)."""
    c = tf.cast(classes, tf.float32)
    scale = (0.5 + 0.1 * c[:, 1]) * _HALF_SIZE
    angle = c[:, 2] * (2 * np.pi / 39)
    lo, hi = _CENTRES
    cx, cy = lo + (hi - lo) * c[:, 3] / 31, lo + (hi - lo) * c[:, 4] / 31
    grid = tf.range(SIZE, dtype=tf.float32) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]          # [N, 1, W]
    dy = grid[None, :, None] - cy[:, None, None]          # [N, H, 1]
    cos, sin = tf.cos(angle)[:, None, None], tf.sin(angle)[:, None, None]
    s = scale[:, None, None]
    u = (cos * dx - sin * dy) / s                          # the shape's own frame, turned back
    v = (sin * dx + cos * dy) / s                          # (y grows downwards: anticlockwise)
    square = tf.maximum(tf.abs(u), tf.abs(v)) <= 1.0
    ellipse = u ** 2 + (v / 0.5) ** 2 <= 1.0
    hu, hv = 1.15 * u, -1.12 * v + 0.12                    # the heart's curve, upright
    heart = (hu ** 2 + hv ** 2 - 1.0) ** 3 - hu ** 2 * hv ** 3 <= 0.0
    shape = tf.cast(classes, tf.int32)[:, 0][:, None, None]
    on = tf.where(shape == 0, square, tf.where(shape == 1, ellipse, heart))
    return tf.cast(on, tf.uint8)[..., None] * 255


_render_graph = tf.function(render, reduce_retracing=True)  # 20x faster than eager


def render_images(classes, batch: int = 4096) -> np.ndarray:
    """`render` into float32 images in [0, 1] ``[N, 64, 64, 1]`` (NumPy), in batches."""
    classes = np.asarray(classes)
    return np.concatenate([_render_graph(classes[i:i + batch]).numpy() for i in
                           range(0, max(len(classes), 1), batch)]).astype(np.float32) / 255.0


def _published(data_dir: str):
    path = os.path.join(data_dir or "", PUBLISHED_FILE)
    if not data_dir or not os.path.exists(path):
        return None
    return np.load(path)["imgs"]  # [737280, 64, 64] uint8, 0 or 1


@SOURCES.register("dsprites")
class DspritesSource(Source):
    """dSprites from its factors (see the module): streamed, labels the shape."""

    def class_names(self, c) -> Tuple[str, ...]:
        return SHAPES

    def validate(self, c) -> None:
        if c.image_size not in (0, SIZE) or c.channels not in (0, 1):
            raise ConfigError(f"data.source='dsprites' draws {SIZE} x {SIZE} grey images; "
                              f"data.image_size={c.image_size} and data.channels={c.channels} "
                              "cannot apply: leave them 0")

    def arrays(self, c):
        raise NotImplementedError("dsprites is streamed; use tfvae.data.load")

    def read(self, c, seed, with_labels, say, shard=None):
        train_idx, val_idx, test_idx = splits_lib.holdout(NUM_IMAGES, c, seed, False, False)
        published = _published(c.data_dir)
        if published is not None:
            say(f"note: dsprites images from {os.path.join(c.data_dir, PUBLISHED_FILE)}")
            images = tf.constant(published)

            def draw(index):
                return tf.gather(images, index)[..., None] * 255, \
                    tf.cast(index // _STRIDES[0], tf.int64)
        else:
            strides = tf.constant(_STRIDES, tf.int64)
            sizes = tf.constant(NUM_VALUES, tf.int64)

            def draw(index):
                classes = (index[:, None] // strides) % sizes
                return render(classes), classes[:, 0]

        def split(indices, shuffle=False):
            ds = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64))
            if shuffle and shard:
                ds = ds.shard(*shard)
            if shuffle:
                ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
            count = len(indices) // (shard[0] if shuffle and shard else 1)
            ds = ds.batch(512).map(draw, num_parallel_calls=2).unbatch()
            return ds.apply(tf.data.experimental.assert_cardinality(count)), count
        return splits_lib.streamed(c, split(train_idx, shuffle=True), split(val_idx),
                                   split(test_idx), (SIZE, SIZE, 1), seed, with_labels,
                                   SHAPES, shard)
