"""Splits of a data set as `tf.data` pipelines: the train / validation / test split (held out of
the training images where the source lacks one, seeded or the last N), the training labels
``data.labels`` keeps, and the batched pipelines, in memory (`in_memory`) or streamed
(`streamed`). Pipelines are deterministic under ``seed`` (shuffle order and dynamic
binarisation included)."""
import dataclasses
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from tfvae.data import memory
from tfvae.data import pixels as pixels_lib
from tfvae.errors import ConfigError, DataError

VALIDATION_SPLITS = ("random", "last")
LABEL_CHOICES = ("all", "none")


@dataclasses.dataclass
class Splits:
    """Batched pipelines of float32 images ``[B, H, W, C]`` (and labels if asked for).

    ``train`` yields ``steps_per_epoch`` full batches per pass (reshuffled, and re-binarised in
    'dynamic' mode, on every pass); for `fit`, prefer ``train.repeat()`` with ``steps_per_epoch``.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: Tuple[int, int, int]
    num_train: int
    num_validation: int
    num_test: int
    steps_per_epoch: int
    class_names: Optional[Tuple[str, ...]] = None  # label names where the source has them
    num_classes: int = 0           # K, labels 0..K-1, where the source has labels (else 0)
    num_labelled: int = 0          # training images that keep their label (`data.labels`)
    # Endless batches of ``(images, labels)`` of the labelled training images alone (reshuffled
    # each pass, pixels as ``train``'s): a semi-supervised model draws one beside each batch of
    # ``train``. None where no training image keeps a label (or the data is streamed).
    labelled: Optional[tf.data.Dataset] = None


def options() -> tf.data.Options:
    """Deterministic, and without tf.data's autotuning: its threads made tearing down an iterator
    take 4-20 s on a 2-core machine (measured); the pipelines are too cheap to need tuning."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def images_of(batch):
    """The images of a batch, whether the pipeline yields ``images`` or ``(images, labels)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def first_images(splits: Splits, n: int, split: str = "train"):
    """Up to ``n`` images ``[n, H, W, C]`` of the first batch of ``split`` (for a VampPrior's
    initial pseudo-inputs, fixed images to show or to measure a gradient on)."""
    return images_of(next(iter(getattr(splits, split))))[:n]


def first_labels(splits: Splits, n: int, split: str = "train"):
    """The labels ``[n]`` of `first_images` (None where the pipeline has none)."""
    batch = next(iter(getattr(splits, split)))
    return batch[1][:n] if isinstance(batch, (tuple, list)) else None


def holdout(n: int, c, seed: int, has_test: bool, has_validation: bool):
    """Indices ``(train, validation, test)`` into the source's ``n`` training images: the
    validation and test images it lacks are held out of them (seeded, or the last N with
    ``data.validation_split='last'``); ``data.train_size`` caps what is left."""
    n_val = 0 if has_validation else c.validation_size
    n_test = 0 if has_test else c.test_size
    if not has_test and c.test_size == 0:
        raise DataError(
            "the data source has no test split (e.g. no t10k-images-idx3-ubyte[.gz] in the IDX "
            "folder, no test/ in the image folder); add one or set data.test_size=N to hold out "
            "N training images")
    if n_val + n_test >= n:
        raise ConfigError(
            f"data.validation_size={n_val} (+ data.test_size={n_test}) leaves no training "
            f"images out of {n}; lower them")
    perm = np.random.default_rng(seed).permutation(n)
    if c.validation_split == "last":  # the last images in the source's order, unshuffled
        val_idx = np.arange(n - n_val, n)
        perm = perm[perm < n - n_val]
    else:
        val_idx, perm = perm[:n_val], perm[n_val:]
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    if c.train_size:
        train_idx = train_idx[:c.train_size]
    return train_idx, val_idx, test_idx


def check_batch(c, num_train):
    if num_train < c.batch_size:
        raise ConfigError(f"data.batch_size={c.batch_size} exceeds the {num_train} training "
                          "images; lower the batch size")


def labels_setting(value) -> object:
    """``data.labels`` checked: 'all', 'none', or a number of labels to keep per class."""
    text = str(value).strip()
    if text in LABEL_CHOICES:
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ConfigError(f"data.labels={value!r}; use 'all', 'none', or N (a positive number of "
                      "training labels kept per class, the rest unlabelled)")


def num_classes_of(names, y_train) -> int:
    """K: the source's class names, else 1 + the largest label (0 where it has none)."""
    if names:
        return len(names)
    return int(y_train.max()) + 1 if len(y_train) and y_train.max() >= 0 else 0


def keep_labels(labels: np.ndarray, setting, num_classes: int, seed: int) -> np.ndarray:
    """The training labels ``data.labels`` keeps, -1 for the others: all, none, or N per class
    drawn with ``seed`` (the same N images for the same seed). Raises `DataError` for labels
    outside 0..K-1 and for N above what a class has."""
    setting = labels_setting(setting)
    labels = np.asarray(labels, np.int64)
    bad = np.flatnonzero((labels < -1) | (labels >= max(num_classes, 1)) if num_classes
                         else labels < -1)
    if len(bad):
        raise DataError(f"label {int(labels[bad[0]])} is outside the classes "
                        f"0..{num_classes - 1} ({len(bad)} training labels, the first at index "
                        f"{bad[0]}); labels must be 0..K-1 (or -1 for an unlabelled image)")
    if setting == "all":
        return labels
    if setting == "none":
        return np.full_like(labels, -1)
    if not num_classes or not np.any(labels >= 0):
        raise DataError(f"data.labels={setting} asks for labels, but these images have none; "
                        "use a source with labels (class subfolders, an .npz 'labels' array, a "
                        "TFDS set with a 'label' feature) or data.labels='all'")
    rng = np.random.default_rng(seed + 104729)
    kept = np.full_like(labels, -1)
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        if len(members) < setting:
            raise DataError(f"data.labels={setting} per class, but class {k} has only "
                            f"{len(members)} labelled training images; lower data.labels")
        chosen = rng.choice(members, setting, replace=False)
        kept[chosen] = k
    return kept


def in_memory(c, arrays, names, seed: int, with_labels: bool) -> Splits:
    """The splits of a source read into memory (``arrays``: uint8 images and labels per split it
    has; ``names``: its class names, or None): the missing splits held out, images resized, the
    evaluation splits' pixels fixed once, the training labels ``data.labels`` keeps."""
    if c.channels:
        arrays = {k: (pixels_lib.convert_channels(x, c.channels), y)
                  for k, (x, y) in arrays.items()}
    x, y = arrays["train"]
    train_idx, val_idx, test_idx = holdout(len(x), c, seed, "test" in arrays,
                                           "validation" in arrays)
    x_test, y_test = arrays["test"] if "test" in arrays else (x[test_idx], y[test_idx])
    x_val, y_val = arrays["validation"] if "validation" in arrays else (x[val_idx], y[val_idx])
    y_train = y[train_idx]
    num_classes = num_classes_of(names, y_train)
    y_train = keep_labels(y_train, c.labels, num_classes, seed)
    check_batch(c, len(train_idx))
    gather_images, image_shape = _training_images(x, train_idx, c.image_size)
    train_labels = tf.constant(y_train)
    pixels = pixels_lib.pixel_transform(c)

    def make_batch(indices, seed_pair):
        images = pixels(gather_images(indices), seed_pair)
        return (images, tf.gather(train_labels, indices)) if with_labels else images

    # Shuffling indices, not images, keeps a new epoch's start cheap (no image buffer to refill).
    order = tf.data.Dataset.range(len(train_idx)).shuffle(
        len(train_idx), seed=seed, reshuffle_each_iteration=True)
    order = order.batch(c.batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    train = tf.data.Dataset.zip((order, seeds)).map(make_batch, num_parallel_calls=2)
    kept = np.flatnonzero(y_train >= 0)
    validation = _evaluation(c, x_val, y_val, pixels_lib.EVAL_BINARIZATION_SEED + 1, with_labels)
    test = _evaluation(c, x_test, y_test, pixels_lib.EVAL_BINARIZATION_SEED, with_labels)
    return Splits(
        train=train.prefetch(2).with_options(memory.pipeline_options(options())),
        validation=validation, test=test, image_shape=image_shape,
        num_train=len(train_idx), num_validation=len(x_val), num_test=len(x_test),
        steps_per_epoch=len(train_idx) // c.batch_size,
        class_names=names if with_labels else None,
        num_classes=num_classes,
        num_labelled=int(len(kept)),
        labelled=_labelled_stream(c, kept, gather_images, train_labels, pixels, seed),
    )


def _training_images(x, train_idx, image_size):
    """``(gather, image_shape)``: ``gather(positions)`` the uint8 training images
    ``x[train_idx][positions]`` from one copy held by TensorFlow. Where most of ``x`` trains
    and no resize is asked for, that copy is ``x`` itself, indexed through ``train_idx``
    (no second copy of the training images on the way)."""
    aliased = len(train_idx) > len(x) // 2 and (
        image_size <= 0 or tuple(x.shape[1:3]) == (image_size, image_size))
    if aliased:
        images, index = memory.as_tensor(x), tf.constant(train_idx, tf.int64)
        return (lambda positions: tf.gather(images, tf.gather(index, positions))), \
            tuple(int(d) for d in x.shape[1:])
    held = pixels_lib.resize(x[train_idx], image_size)
    images = memory.as_tensor(held)          # [N, H, W, C] uint8, held once in memory
    return (lambda positions: tf.gather(images, positions)), tuple(int(d) for d in held.shape[1:])


def _evaluation(c, images, labels, seed, with_labels):
    """An evaluation split's batches, its pixels fixed once (`pixels.fixed_codes`) and held as
    uint8, made float32 batch by batch."""
    codes, scale = pixels_lib.fixed_codes(pixels_lib.resize(images, c.image_size), c.pixels,
                                          c.threshold, seed)

    def as_pixels(*batch):  # (images,) or (images, labels)
        x = tf.cast(batch[0], tf.float32) / scale
        return (x, batch[1]) if with_labels else x
    codes = memory.as_tensor(codes)
    ds = tf.data.Dataset.from_tensor_slices((codes, labels) if with_labels else codes)
    return ds.batch(c.eval_batch_size).map(as_pixels).prefetch(2).with_options(
        memory.pipeline_options(options()))


def _labelled_stream(c, kept, gather_images, train_labels, pixels, seed):
    """Endless batches of ``(images, labels)`` of the training images at indices ``kept``
    (reshuffled each pass, pixels as the training pipeline's), or None without any."""
    if not len(kept):
        return None

    def labelled_batch(indices, seed_pair):
        return (pixels(gather_images(indices), seed_pair),
                tf.gather(train_labels, indices))
    picks = tf.data.Dataset.from_tensor_slices(kept).repeat().shuffle(
        len(kept), seed=seed + 1, reshuffle_each_iteration=True)
    labelled = tf.data.Dataset.zip((
        picks.batch(min(c.batch_size, len(kept)), drop_remainder=True),
        tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)))
    return labelled.map(labelled_batch, num_parallel_calls=2).prefetch(2).with_options(
        memory.pipeline_options(options()))


def streamed(c, train, validation, test, shape, seed: int, with_labels: bool,
             names, shard=None) -> Splits:
    """Batched pipelines from unbatched ``(uint8 image, label)`` datasets (each with its count),
    the training one already shuffled per epoch: training pixels binarised per batch as in
    memory; evaluation pixels binarised once per image (a stateless seed from its index), so
    every pass sees the same pixels. With a ``shard`` the training pipeline is this worker's
    part (its count ``num_train / num_workers``); ``num_train`` stays the whole data set's."""
    (train, num_train), (validation, num_val), (test, num_test) = train, validation, test
    if shard:
        num_train = num_train * shard[0]  # the worker's part times the workers: the whole
    check_batch(c, num_train)
    pixels, mode = pixels_lib.pixel_transform(c), pixels_lib.mode(c)
    seeds = tf.data.Dataset.random(seed=seed + 7919 * (shard[1] if shard else 0),
                                   rerandomize_each_iteration=True).batch(2)
    train = tf.data.Dataset.zip((train.batch(c.batch_size, drop_remainder=True), seeds)).map(
        lambda xy, s: (pixels(xy[0], s), xy[1]) if with_labels else pixels(xy[0], s))

    def eval_pipeline(ds, stream_seed):
        def fixed(index, example):
            x = mode.fixed_image(tf.cast(example[0], tf.float32) / 255.0, tf.stack(
                [tf.constant(stream_seed, tf.int64), index]), c.threshold)
            return (x, tf.cast(example[1], tf.int64)) if with_labels else x
        return ds.enumerate().map(fixed, num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True).batch(c.eval_batch_size).prefetch(2) \
            .with_options(options())
    train_options = options()
    if shard:  # already this worker's part
        train_options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
    return Splits(
        train=train.prefetch(2).with_options(train_options),
        validation=eval_pipeline(validation, pixels_lib.EVAL_BINARIZATION_SEED + 1),
        test=eval_pipeline(test, pixels_lib.EVAL_BINARIZATION_SEED),
        image_shape=tuple(shape), num_train=num_train, num_validation=num_val,
        num_test=num_test, steps_per_epoch=num_train // c.batch_size,
        class_names=names if with_labels else None, num_classes=len(names or ()),
        num_labelled=num_train if names and labels_setting(c.labels) == "all" else 0)
