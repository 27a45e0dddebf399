"""The ``tfds`` source: a TFDS data set by name (``data.name``, ``data.data_dir``), downloaded and
prepared first where ``data.download`` allows and the network answers. A set whose decoded
images fit in ``data.in_memory_mb`` is read into memory; a larger one streams (TFDS shuffles its
files, then a buffer of 10,000 images)."""
import os
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfvae.data import memory
from tfvae.data import pixels as pixels_lib
from tfvae.data import splits as splits_lib
from tfvae.data.checks import Arrays
from tfvae.data.sources import SOURCES, Found, Source
from tfvae.errors import ConfigError, DataError

# --------------------------------------------------------------------------- TFDS
# TFDS first looks for a prepared copy on Google Cloud Storage, then downloads from the source.
_PROBE_HOST = ("storage.googleapis.com", 443)


def _offline_advice(name):
    return (f"Fix: on a machine with internet run `tfds build {name}` (or train once with "
            f"data.download=True), then point data.data_dir (or TFDS_DATA_DIR) at the folder that "
            f"holds `{name}/`; or use data.source='idx' with data.idx_dir=<folder of the "
            "official *-idx3-ubyte.gz files>")


def _check_online(name, where, timeout=5.0):
    """Fails in seconds, not after minutes of TFDS's download retries, when the data set must be
    downloaded and the network cannot be reached (no proxy set, and no route to TFDS's host)."""
    import socket
    if any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")):
        return  # a proxy decides; let TFDS try
    try:
        socket.create_connection(_PROBE_HOST, timeout=timeout).close()
    except OSError as err:
        raise DataError(
            f"TFDS data set {name!r} is not prepared in {where!r} and cannot be downloaded: the "
            f"network is unreachable ({err.strerror or type(err).__name__}). "
            + _offline_advice(name)) from None


def class_names(data_config) -> Optional[Tuple[str, ...]]:
    """Names of the label classes (TFDS's ``label`` feature), None where it has none."""
    try:
        import tensorflow_datasets as tfds
        builder = tfds.builder(data_config.name, data_dir=data_config.data_dir or None)
        names = getattr(builder.info.features["label"], "names", None)
        return tuple(names) if names else None
    except Exception:  # noqa: BLE001 - names are a nicety; figures fall back to numbers
        return None


def _prepared_builder(name: str, data_dir: Optional[str], download: bool):
    """The TFDS builder of ``name``, prepared (downloaded first where allowed and needed)."""
    import tensorflow_datasets as tfds  # slow import, only when used

    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ConfigError(f"data.name={name!r} is not a TFDS data set: {e}") from None
    try:
        if download and not builder.is_prepared():
            _check_online(name, where)
            builder.download_and_prepare()
        if not builder.is_prepared():
            raise FileNotFoundError(f"{name} is not prepared there")
    except DataError:
        raise
    except Exception as e:  # TFDS raises AssertionError, DownloadError, OSError, ... here
        raise DataError(
            f"cannot load TFDS data set {name!r} from {where!r} ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). " + _offline_advice(name)) from None
    return builder


def tfds_builder(data_config):
    """The prepared TFDS builder of ``config.data``."""
    c = data_config
    return _prepared_builder(c.name, os.path.expanduser(c.data_dir) if c.data_dir else None,
                             c.download)


def load_tfds(name: str, data_dir: Optional[str], download: bool) -> Dict[str, Arrays]:
    """Loads ``train`` and ``test`` of a TFDS image data set (e.g. ``mnist``, ``fashion_mnist``)
    into memory."""
    import tensorflow_datasets as tfds
    builder = _prepared_builder(name, data_dir, download)
    # Features by name, not ``as_supervised``: a set without supervised keys (one made with
    # `tfds.dataset_builders.store_as_tfds_dataset`, say) loads too. Read in blocks into one
    # array per split: peak memory is the decoded images and one block, not several copies.
    out = {}
    for split in ("train", "test"):
        n = builder.info.splits[split].num_examples
        images = labels = None
        i = 0
        for example in tfds.as_numpy(builder.as_dataset(split=split, batch_size=10_000)):
            block = example["image"]
            if images is None:
                if block.dtype != np.uint8 or block.ndim != 4:
                    raise DataError(f"TFDS {name!r} images are {block.dtype} {block.shape}; "
                                    "tfvae needs uint8 images [N, H, W, C]")
                images = memory.aligned_empty((n,) + block.shape[1:], np.uint8)
                labels = np.full(n, -1, np.int64)
            images[i:i + len(block)] = block
            if "label" in example:
                labels[i:i + len(block)] = example["label"]
            i += len(block)
        if images is None or i != n:
            raise DataError(f"TFDS {name!r} split {split!r} holds {i} images, its info says {n}; "
                            f"prepare it again (`tfds build {name} --overwrite`)")
        out[split] = (images, labels)
    return out


def _streamed_tfds(c, builder, seed: int, with_labels: bool, say, shard=None):
    """A TFDS data set read as it goes (TFDS shuffles its files, then a buffer of 10,000
    images); validation (and a test split it lacks) are its last training examples, as
    ``data.validation_split='last'``."""
    import tensorflow_datasets as tfds
    splits = builder.info.splits
    n = splits["train"].num_examples
    has_test = "test" in splits
    n_val, n_test = c.validation_size, 0 if has_test else c.test_size
    if not has_test and not n_test:
        raise DataError(f"TFDS {c.name!r} has no test split; set data.test_size=N to hold out N "
                        "training images")
    if n_val + n_test >= n:
        raise ConfigError(f"data.validation_size={n_val} (+ data.test_size={n_test}) leaves no "
                          f"training images out of {n}; lower them")
    if c.validation_split != "last":
        say(f"note: streaming {c.name!r}: its validation split is the last {n_val} training "
            "images (as data.validation_split='last')")
    n_train = n - n_val - n_test
    n_train = min(n_train, c.train_size) if c.train_size else n_train
    if splits_lib.labels_setting(c.labels) != "all":
        raise DataError(f"data.labels={c.labels!r} picks training labels from all of them, but "
                        f"{c.name!r} is streamed (above data.in_memory_mb={c.in_memory_mb}); "
                        "raise data.in_memory_mb to hold it in memory")
    shape = _tfds_shape(builder, c)
    read = tfds.ReadConfig(shuffle_seed=seed)

    def images(split, count, shuffle=False):
        config = read
        if shuffle and shard and splits["train"].num_shards >= shard[0]:
            # TFDS reads only this worker's files (its own sharding of an input pipeline).
            config = tfds.ReadConfig(shuffle_seed=seed, input_context=tf.distribute.InputContext(
                num_input_pipelines=shard[0], input_pipeline_id=shard[1]))
        # An ordered set (TFDS's disable_shuffling) refuses shuffled files: the buffer shuffles.
        ds = builder.as_dataset(split=split, read_config=config, shuffle_files=shuffle and not
                                getattr(builder.info, "disable_shuffling", False))
        if shuffle and shard and config is read:  # fewer files than workers: every n-th example
            ds = ds.shard(*shard)
        if shuffle and shard:
            count = count // shard[0]
        if shuffle:
            ds = ds.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
        return ds.map(lambda ex: (pixels_lib.as_image(ex["image"], c, shape), ex.get(
            "label", tf.constant(-1, tf.int64)) if isinstance(ex, dict) else -1),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), count
    test = (images("test", splits["test"].num_examples) if has_test
            else images(f"train[{n - n_val - n_test}:{n - n_val}]", n_test))
    return splits_lib.streamed(c, images(f"train[:{n_train}]", n_train, shuffle=True),
                     images(f"train[{n - n_val}:]", n_val), test, shape, seed, with_labels,
                     class_names(c), shard)


def _tfds_shape(builder, c):
    shape = tuple(builder.info.features["image"].shape)
    if None in shape[:2] and not c.image_size:
        raise DataError(f"TFDS {c.name!r} images differ in size ({shape}); set data.image_size=N")
    size = (c.image_size, c.image_size) if c.image_size else shape[:2]
    return tuple(size) + (c.channels or shape[2],)


@SOURCES.register("tfds")
class TfdsSource(Source):
    """A TFDS data set by name."""

    def arrays(self, c) -> Dict[str, Arrays]:
        return load_tfds(c.name, os.path.expanduser(c.data_dir) if c.data_dir else None,
                         c.download)

    def class_names(self, c):
        return class_names(c)

    def read(self, c, seed, with_labels, say, shard=None):
        builder = tfds_builder(c)
        total = sum(split.num_examples for split in builder.info.splits.values())
        shape = _tfds_shape(builder, c)
        if total * int(np.prod(shape)) > c.in_memory_mb * 2 ** 20:
            say(f"note: {c.name!r} ({total} images, {total * np.prod(shape) / 2 ** 20:.0f} MB "
                f"decoded) exceeds data.in_memory_mb={c.in_memory_mb}: streaming it")
            return _streamed_tfds(c, builder, seed, with_labels, say, shard)
        return Found(self.arrays(c), self.class_names(c))
