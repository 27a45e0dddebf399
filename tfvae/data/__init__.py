"""Image data as `tf.data` pipelines, from any of four sources (``data.source``, the registry
`sources.SOURCES`, one module each):

- ``tfds`` (`tfvae.data.tfds`): a TFDS data set by name (``data.name``);
- ``idx`` (`tfvae.data.idx`): a folder of official IDX files (``data.idx_dir``), as MNIST and
  FashionMNIST ship;
- ``folder`` (`tfvae.data.folder`): a folder of your own PNG/JPEG images (``data.path``), grey
  or colour, optionally one subfolder per class and ``train/``, ``validation/``, ``test/``;
- ``arrays`` (`tfvae.data.arrays`): a ``.npz`` (``images``, optional ``labels``,
  ``test_images``, ``test_labels``) or ``.npy`` file of images (``data.path``); from Python,
  `from_arrays` takes NumPy arrays or a `tf.data.Dataset`.

Sources give uint8 images ``[N, H, W, C]`` (C = 1 or 3) and labels (-1 where there are none),
checked as they are read (`tfvae.data.checks`); `tfvae.data.splits` makes the splits (train /
validation held out from train / test, unless the source has them) and `tfvae.data.pixels` the
optional resize and the pixel mode (``binary``, ``dynamic``, ``continuous``, a registry).

Pipelines are deterministic under ``seed`` (shuffle order and dynamic binarisation included).
Images are held in memory once decoded, except a folder or TFDS data set whose decoded images
exceed ``data.in_memory_mb``: it streams from disk (decoded in parallel every epoch, reshuffled
each epoch), so memory stays bounded whatever its size (`splits.streamed`).
"""
import sys
from typing import Dict, Optional, Tuple

from tfvae.data import arrays as _arrays  # noqa
from tfvae.data import dsprites as _dsprites  # noqa: F401  (registers the source)
from tfvae.data import folder as _folder
from tfvae.data import idx as _idx
from tfvae.data import image_folders
from tfvae.data import tfds as _tfds
from tfvae.data.arrays import from_arrays, load_array_file
from tfvae.data.checks import Arrays
from tfvae.data.idx import load_idx_dir, read_idx
from tfvae.data.pixels import EVAL_BINARIZATION_SEED, PIXEL_MODES, PIXELS
from tfvae.data.sources import SOURCES
from tfvae.data.splits import (LABEL_CHOICES, VALIDATION_SPLITS, Splits,
                               first_images, first_labels, images_of,
                               in_memory, keep_labels, labels_setting)
from tfvae.data.tfds import load_tfds, tfds_builder
from tfvae.errors import ConfigError

__all__ = ["Arrays", "EVAL_BINARIZATION_SEED", "PIXEL_MODES", "SOURCES", "Splits",
           "class_names", "first_images", "first_labels", "from_arrays", "images_of",
           "keep_labels", "labels_setting", "load", "load_array_file", "load_arrays",
           "load_idx_dir", "load_tfds", "read_idx", "tfds_builder", "validate"]


def validate(data_config) -> None:
    """Raises `ConfigError` for a value of ``config.data`` that cannot work."""
    c = data_config
    SOURCES.build(c.source).validate(c)
    PIXELS.get(c.pixels)
    if not 0.0 < c.threshold < 1.0:
        raise ConfigError(f"data.threshold={c.threshold} must lie in (0, 1)")
    for field in ("batch_size", "eval_batch_size"):
        if c[field] < 1:
            raise ConfigError(f"data.{field}={c[field]} must be a positive integer")
    for field in ("validation_size", "test_size", "train_size", "image_size"):
        if c[field] < 0:
            raise ConfigError(f"data.{field}={c[field]} must be >= 0")
    if c.validation_split not in VALIDATION_SPLITS:
        raise ConfigError(f"data.validation_split={c.validation_split!r}; valid choices are: "
                          f"{', '.join(VALIDATION_SPLITS)}")
    labels_setting(c.labels)
    if c.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels={c.channels}; use 0 (as the images are), 1 (grey) or "
                          "3 (colour)")
    if c.bad_images not in image_folders.BAD_IMAGES:
        raise ConfigError(f"data.bad_images={c.bad_images!r}; valid choices are: "
                          f"{', '.join(image_folders.BAD_IMAGES)}")


def load(data_config, seed: int = 0, with_labels: bool = False,
         arrays: Optional[Dict[str, Arrays]] = None, say=None,
         shard: Optional[Tuple[int, int]] = None) -> Splits:
    """Builds train / validation / test pipelines from ``config.data``.

    Args:
      data_config: the ``data`` block of a tfvae config (see ``tfvae/config.py``).
      seed: fixes the validation hold-out, the shuffle order and dynamic binarisation.
      with_labels: pipelines yield ``(images, labels)`` instead of ``images``.
      arrays: already loaded ``{'train': (x, y), 'test': (x, y)}`` (skips reading the source;
        `from_arrays` makes them from NumPy arrays or a `tf.data.Dataset`).
      say: where notes go (skipped files, a streamed folder); default stderr.
      shard: ``(num_workers, worker_index)`` of a multi-worker run (`distribute.input_shard`):
        a streamed source's training pipeline then reads only this worker's part of the files
        (a folder's images, a TFDS split's shards), before anything is decoded, and tells
        `tf.distribute` not to shard it again. In-memory data is left to `tf.distribute`'s
        own sharding.
    """
    c = data_config
    validate(c)
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    if arrays is not None:
        return in_memory(c, arrays, None, seed, with_labels)
    found = SOURCES.build(c.source).read(c, seed, with_labels, say, shard)
    if isinstance(found, Splits):  # streamed
        return found
    return in_memory(c, found.arrays, found.names, seed, with_labels)


def load_arrays(data_config) -> Dict[str, Arrays]:
    """The source's images and labels as ``{'train': (x, y), 'test': ..., 'validation': ...}``
    (the splits it has), read into memory."""
    return SOURCES.build(data_config.source).arrays(data_config)


def class_names(data_config) -> Optional[Tuple[str, ...]]:
    """Names of the label classes where the source has them (TFDS's ``label`` feature)."""
    return SOURCES.build(data_config.source).class_names(data_config)
