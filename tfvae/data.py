"""Image data as `tf.data` pipelines, from any of four sources (``data.source``):

- ``tfds``: a TFDS data set by name (``data.name``);
- ``idx``: a folder of official IDX files (``data.idx_dir``), as MNIST and FashionMNIST ship;
- ``folder``: a folder of your own PNG/JPEG images (``data.path``), grey or colour, optionally
  one subfolder per class and ``train/``, ``validation/``, ``test/`` (`tfvae.image_folders`);
- ``arrays``: a ``.npz`` (``images``, optional ``labels``, ``test_images``, ``test_labels``) or
  ``.npy`` file of images (``data.path``); from Python, `from_arrays` takes NumPy arrays or a
  `tf.data.Dataset`.

Sources give uint8 images ``[N, H, W, C]`` (C = 1 or 3) and labels (-1 where there are none);
shared code makes the splits (train / validation held out from train / test, unless the source
has them), the optional resize and the pixel mode:

- ``binary``: ``x > threshold`` (fixed), for every split;
- ``dynamic``: training pixels are resampled ``x ~ Bernoulli(intensity)`` every time a batch is
  drawn; validation and test are binarised once with a fixed seed, as in the literature;
- ``continuous``: intensities in [0, 1].

Pipelines are deterministic under ``seed`` (shuffle order and dynamic binarisation included).
Images are held in memory once decoded, except a folder or TFDS data set whose decoded images
exceed ``data.in_memory_mb``: it streams from disk (decoded in parallel every epoch, reshuffled
each epoch), so memory stays bounded whatever its size (`_streamed`).
"""
import dataclasses
import glob
import gzip
import os
import sys
import zlib
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfvae.errors import ConfigError, DataError

PIXEL_MODES = ("binary", "dynamic", "continuous")
SOURCES = ("tfds", "idx", "folder", "arrays")
VALIDATION_SPLITS = ("random", "last")
# Seed of the one-off binarisation of validation and test images (fixed, as in the literature).
EVAL_BINARIZATION_SEED = 1

Arrays = Tuple[np.ndarray, np.ndarray]  # images uint8 [N, H, W, C], labels int64 [N]


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


# --------------------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) as distributed by the MNIST/FashionMNIST authors.

    Raises `DataError` naming the file and what is wrong: unreadable gzip stream, bad magic
    number, or a payload whose length disagrees with the header.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{path}: cannot be decompressed ({e}); the file is corrupt or truncated, "
            "download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type> <ndim>, e.g. 00000803 for images, 00000801 for labels)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    payload = len(raw) - header
    if payload != expected:
        raise DataError(
            f"{path}: header says shape {dims} ({expected} bytes of data) but the file holds "
            f"{payload} bytes; the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx(directory: str, prefix: str, kind: str, ndim: int) -> Optional[str]:
    """Finds e.g. ``train-images-idx3-ubyte[.gz]`` (also the ``train-images.idx3-ubyte`` variant)."""
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = os.path.join(directory, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}")
            if os.path.exists(path):
                return path
    return None


def load_idx_dir(directory: str) -> Dict[str, Arrays]:
    """Reads ``train`` (required) and ``t10k`` (test, optional) IDX files from a folder."""
    if not os.path.isdir(directory):
        raise DataError(
            f"IDX folder {directory!r} does not exist; set data.idx_dir to a folder holding "
            "train-images-idx3-ubyte.gz (and t10k-images-idx3-ubyte.gz for a test split)")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_idx(directory, prefix, "images", 3)
        if images_path is None:
            if split == "train":
                present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*")))
                raise DataError(
                    f"no {prefix}-images-idx3-ubyte[.gz] in {directory!r} (it holds: "
                    f"{', '.join(present) or 'nothing'}); point data.idx_dir at the folder with "
                    "the official IDX files")
            continue
        images = read_idx(images_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected uint8 images [N, H, W], got "
                            f"{images.dtype} {images.shape}")
        labels_path = _find_idx(directory, prefix, "labels", 1)
        if labels_path is None:
            labels = np.full(len(images), -1, np.int64)
        else:
            labels = read_idx(labels_path).astype(np.int64)
            if labels.shape != (len(images),):
                raise DataError(
                    f"{images_path} holds {len(images)} images but {labels_path} holds "
                    f"{labels.shape[0] if labels.ndim else 0} labels; the two files must come "
                    "from the same release (re-download the pair)")
        out[split] = (images[..., None], labels)
    return out


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
    """Names of the label classes where the source has them (TFDS's ``label`` feature)."""
    if data_config.source != "tfds":
        return None
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
    data = builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
    out = {}
    for split, (images, labels) in zip(("train", "test"), tfds.as_numpy(data)):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"TFDS {name!r} images are {images.dtype} {images.shape}; tfvae "
                            "needs uint8 images [N, H, W, C]")
        out[split] = (images, labels.astype(np.int64))
    return out


# --------------------------------------------------------------------------- splits and pixels
def _resize(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
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


def _fixed_pixels(images: np.ndarray, pixels: str, threshold: float, seed: int) -> np.ndarray:
    """Final float32 pixels of an evaluation split (binarised once where the mode says so)."""
    x = images.astype(np.float32) / 255.0
    if pixels == "binary":
        return (x > threshold).astype(np.float32)
    if pixels == "dynamic":
        rng = np.random.default_rng(seed)
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
    return x


def _options() -> tf.data.Options:
    """Deterministic, and without tf.data's autotuning: its threads made tearing down an iterator
    take 4-20 s on a 2-core machine (measured); the pipelines are too cheap to need tuning."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def validate(data_config) -> None:
    """Raises `ConfigError` for a value of ``config.data`` that cannot work."""
    c = data_config
    if c.source not in SOURCES:
        raise ConfigError(f"data.source={c.source!r}; valid sources are: {', '.join(SOURCES)}")
    if c.pixels not in PIXEL_MODES:
        raise ConfigError(f"data.pixels={c.pixels!r}; valid modes are: {', '.join(PIXEL_MODES)}")
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
    if c.source == "idx" and not c.idx_dir:
        raise ConfigError("data.source='idx' needs data.idx_dir: the folder of *-idx3-ubyte[.gz] files")
    if c.source in ("folder", "arrays") and not c.path:
        raise ConfigError(f"data.source={c.source!r} needs data.path: "
                          + ("the folder of your images" if c.source == "folder"
                             else "a .npz or .npy file of images"))
    labels_setting(c.labels)
    if c.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels={c.channels}; use 0 (as the images are), 1 (grey) or "
                          "3 (colour)")
    from tfvae import image_folders
    if c.bad_images not in image_folders.BAD_IMAGES:
        raise ConfigError(f"data.bad_images={c.bad_images!r}; valid choices are: "
                          f"{', '.join(image_folders.BAD_IMAGES)}")


def load_arrays(data_config) -> Dict[str, Arrays]:
    """The source's images and labels as ``{'train': (x, y), 'test': ..., 'validation': ...}``
    (the splits it has), read into memory."""
    c = data_config
    if c.source == "idx":
        return load_idx_dir(os.path.expanduser(c.idx_dir))
    if c.source == "arrays":
        return load_array_file(os.path.expanduser(c.path))
    if c.source == "folder":
        from tfvae import image_folders
        folder = image_folders.scan(c.path, c.channels, c.image_size, c.bad_images)
        return {split: (image_folders.read_all(files, folder.channels, c.image_size),
                        folder.labels[split]) for split, files in folder.files.items()}
    return load_tfds(c.name, os.path.expanduser(c.data_dir) if c.data_dir else None, c.download)


# --------------------------------------------------------------------------- arrays
def from_arrays(images, labels=None, test_images=None, test_labels=None,
                where: str = "images") -> Dict[str, Arrays]:
    """Your images as a source, for ``data.load(config.data, arrays=...)``: NumPy arrays (or
    `tf.data.Dataset`s of images or ``(image, label)`` pairs) of shape ``[N, H, W]`` or
    ``[N, H, W, C]`` (C = 1 or 3), uint8 in 0..255 or floats in [0, 1] (kept as 8-bit levels);
    labels integers ``[N]``. ``where`` names them in errors."""
    out = {"train": _checked(images, labels, where)}
    if test_images is not None:
        out["test"] = _checked(test_images, test_labels, f"{where} (test_images)")
        if out["test"][0].shape[1:] != out["train"][0].shape[1:]:
            raise DataError(f"{where}: test_images of shape {out['test'][0].shape[1:]} but "
                            f"images of {out['train'][0].shape[1:]}; both must be the same "
                            "size and channels")
    return out


def _as_numpy(data, labels):
    """``(images, labels)`` as NumPy arrays; a `tf.data.Dataset` (of images or ``(image,
    label)`` pairs, batched or not) is read whole."""
    if not isinstance(data, tf.data.Dataset):
        return np.asarray(data), labels
    spec = data.element_spec
    if (spec[0] if isinstance(spec, tuple) else spec).shape.rank == 4:
        data = data.unbatch()
    images, found = [], []
    for element in data.as_numpy_iterator():
        image, label = element if isinstance(element, tuple) else (element, None)
        images.append(image)
        if label is not None:
            found.append(label)
    return np.stack(images) if images else np.zeros((0, 1, 1, 1), np.uint8), (
        np.stack(found) if found else labels)


def _where_bad(bad: np.ndarray) -> str:
    """``'N values in M images, the first in image i'`` for a boolean mask ``[N, ...]``."""
    per_image = bad.reshape(len(bad), -1).any(axis=1)
    return (f"{int(bad.sum())} values in {int(per_image.sum())} images, the first in image "
            f"{int(np.argmax(per_image))}")


def _checked_pixels(images, where) -> np.ndarray:
    """uint8 levels of ``images`` (uint8, bool, integers 0..255 or floats in [0, 1]); raises
    `DataError` naming ``where``, the problem, how many values and the first image."""
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool:
        return images.astype(np.uint8) * 255
    if np.issubdtype(images.dtype, np.floating):
        low, high = float(np.min(images)), float(np.max(images))  # NaN if any is NaN
        if 0.0 <= low and high <= 1.0:  # the usual case: two passes, no masks
            return np.round(images * 255.0).astype(np.uint8)
        finite = np.isfinite(images)
        if not finite.all():
            raise DataError(f"{where}: NaN or infinite pixels, {_where_bad(~finite)}; replace "
                            "or drop those images (floats must lie in [0, 1])")
        outside = (images < 0.0) | (images > 1.0)
        if outside.any():
            raise DataError(
                f"{where}: float pixels outside [0, 1] (from {low:g} to {high:g}), "
                f"{_where_bad(outside)}; scale them to [0, 1] (or give uint8 levels 0..255)")
        return np.round(images * 255.0).astype(np.uint8)
    if np.issubdtype(images.dtype, np.integer):
        outside = (images < 0) | (images > 255)
        if outside.any():
            raise DataError(
                f"{where}: integer pixels outside 0..255 (from {int(images.min())} to "
                f"{int(images.max())}), {_where_bad(outside)}; give 8-bit levels 0..255 (or "
                "floats in [0, 1])")
        return images.astype(np.uint8)
    raise DataError(f"{where}: dtype {images.dtype}; give uint8 levels or floats in [0, 1]")


def _checked_labels(labels, n: int, where) -> np.ndarray:
    """int64 labels ``[n]``: integers (whole-valued floats accepted), 0..K-1 or -1 for an
    unlabelled image."""
    if labels is None:
        return np.full(n, -1, np.int64)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DataError(f"{where}: {n} images but labels of shape {labels.shape}; give one "
                        "integer label per image")
    if np.issubdtype(labels.dtype, np.floating):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            bad = np.flatnonzero(~whole)
            raise DataError(f"{where}: labels that are not integers ({len(bad)} of {n}, the "
                            f"first at index {bad[0]}: {float(labels[bad[0]]):g}); give class "
                            "numbers 0..K-1 (-1: unlabelled)")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels of dtype {labels.dtype}; give integer class numbers "
                        "0..K-1 (-1: unlabelled)")
    bad = np.flatnonzero(labels < -1)
    if len(bad):
        raise DataError(f"{where}: negative labels other than -1 ({len(bad)} of {n}, the first "
                        f"at index {bad[0]}: {int(labels[bad[0]])}); labels are 0..K-1, or -1 "
                        "for an unlabelled image")
    return labels.astype(np.int64)


def _checked(images, labels, where) -> Arrays:
    images, labels = _as_numpy(images, labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{where}: shape {images.shape}; expected [N, H, W] or [N, H, W, C] "
                        "with C = 1 (grey) or 3 (colour)")
    if not len(images):
        raise DataError(f"{where}: no images")
    return _checked_pixels(images, where), _checked_labels(labels, len(images), where)


def load_array_file(path: str) -> Dict[str, Arrays]:
    """A ``.npy`` of images, or a ``.npz`` with ``images`` and optionally ``labels``,
    ``test_images``, ``test_labels`` (see `from_arrays`)."""
    if not os.path.exists(path):
        raise DataError(f"data.path={path!r}: file not found; give a .npz or .npy file of images")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a NumPy .npy/.npz file ({str(err).splitlines()[0]})") from None
    if isinstance(loaded, np.ndarray):
        return from_arrays(loaded, where=path)
    with loaded:
        names = list(loaded.files)
        if "images" not in names:
            raise DataError(f"{path} has no array named 'images' (it holds: "
                            f"{', '.join(names) or 'nothing'}); save your images as "
                            "np.savez(path, images=..., labels=...)")
        get = lambda key: loaded[key] if key in names else None  # noqa: E731
        return from_arrays(get("images"), get("labels"), get("test_images"), get("test_labels"),
                           where=path)


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


def _holdout(n: int, c, seed: int, has_test: bool, has_validation: bool):
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


def _check_batch(c, num_train):
    if num_train < c.batch_size:
        raise ConfigError(f"data.batch_size={c.batch_size} exceeds the {num_train} training "
                          "images; lower the batch size")


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
    names = None
    if arrays is None and c.source == "folder":
        from tfvae import image_folders
        folder = image_folders.scan(c.path, c.channels, c.image_size, c.bad_images)
        names = folder.class_names
        if folder.skipped:
            say(f"note: skipped {len(folder.skipped)} unreadable images (data.bad_images="
                f"'skip'), e.g. {folder.skipped[0]}")
        if folder.decoded_bytes(c.image_size) > c.in_memory_mb * 2 ** 20:
            return _streamed_folder(c, folder, seed, with_labels, say, shard)
        arrays = {split: (image_folders.read_all(files, folder.channels, c.image_size),
                          folder.labels[split]) for split, files in folder.files.items()}
    elif arrays is None and c.source == "tfds":
        builder = tfds_builder(c)
        info = builder.info
        total = sum(split.num_examples for split in info.splits.values())
        shape = _tfds_shape(builder, c)
        if total * int(np.prod(shape)) > c.in_memory_mb * 2 ** 20:
            say(f"note: {c.name!r} ({total} images, {total * np.prod(shape) / 2 ** 20:.0f} MB "
                f"decoded) exceeds data.in_memory_mb={c.in_memory_mb}: streaming it")
            return _streamed_tfds(c, builder, seed, with_labels, say, shard)
        arrays = load_arrays(c)
        names = class_names(c)
    elif arrays is None:
        arrays = load_arrays(c)
        names = class_names(c)
    if c.channels:
        arrays = {k: (_convert_channels(x, c.channels), y) for k, (x, y) in arrays.items()}
    x, y = arrays["train"]
    train_idx, val_idx, test_idx = _holdout(len(x), c, seed, "test" in arrays,
                                            "validation" in arrays)
    x_test, y_test = arrays["test"] if "test" in arrays else (x[test_idx], y[test_idx])
    x_val, y_val = arrays["validation"] if "validation" in arrays else (x[val_idx], y[val_idx])
    x_train, y_train = _resize(x[train_idx], c.image_size), y[train_idx]
    num_classes = _num_classes(names, y_train)
    y_train = keep_labels(y_train, c.labels, num_classes, seed)
    x_val = _fixed_pixels(_resize(x_val, c.image_size), c.pixels, c.threshold,
                          EVAL_BINARIZATION_SEED + 1)
    x_test = _fixed_pixels(_resize(x_test, c.image_size), c.pixels, c.threshold,
                           EVAL_BINARIZATION_SEED)
    _check_batch(c, len(x_train))

    def eval_pipeline(images, labels):
        ds = tf.data.Dataset.from_tensor_slices((images, labels) if with_labels else images)
        return ds.batch(c.eval_batch_size).prefetch(2).with_options(_options())

    train_images = tf.constant(x_train)          # [N, H, W, C] uint8, held once in memory
    train_labels = tf.constant(y_train)
    pixels = _pixel_transform(c)

    def make_batch(indices, seed_pair):
        images = pixels(tf.gather(train_images, indices), seed_pair)
        return (images, tf.gather(train_labels, indices)) if with_labels else images

    # Shuffling indices, not images, keeps a new epoch's start cheap (no image buffer to refill).
    order = tf.data.Dataset.range(len(x_train)).shuffle(
        len(x_train), seed=seed, reshuffle_each_iteration=True)
    order = order.batch(c.batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    train = tf.data.Dataset.zip((order, seeds)).map(make_batch, num_parallel_calls=2)
    train = train.prefetch(2).with_options(_options())

    labelled = None
    kept = np.flatnonzero(y_train >= 0)
    if len(kept):
        def labelled_batch(indices, seed_pair):
            return (pixels(tf.gather(train_images, indices), seed_pair),
                    tf.gather(train_labels, indices))
        picks = tf.data.Dataset.from_tensor_slices(kept).repeat().shuffle(
            len(kept), seed=seed + 1, reshuffle_each_iteration=True)
        labelled = tf.data.Dataset.zip((
            picks.batch(min(c.batch_size, len(kept)), drop_remainder=True),
            tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)))
        labelled = labelled.map(labelled_batch, num_parallel_calls=2).prefetch(2).with_options(
            _options())

    return Splits(
        train=train,
        validation=eval_pipeline(x_val, y_val),
        test=eval_pipeline(x_test, y_test),
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_train=len(x_train),
        num_validation=len(x_val),
        num_test=len(x_test),
        steps_per_epoch=len(x_train) // c.batch_size,
        class_names=names if with_labels else None,
        num_classes=num_classes,
        num_labelled=int(len(kept)),
        labelled=labelled,
    )


LABEL_CHOICES = ("all", "none")


def labels_setting(value) -> object:
    """``data.labels`` checked: 'all', 'none', or a number of labels to keep per class."""
    text = str(value).strip()
    if text in LABEL_CHOICES:
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ConfigError(f"data.labels={value!r}; use 'all', 'none', or N (a positive number of "
                      "training labels kept per class, the rest unlabelled)")


def _num_classes(names, y_train) -> int:
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


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 images to ``channels``: grey repeated into RGB, or RGB to its luma (the weights of
    `tf.image.rgb_to_grayscale`)."""
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    return np.round(luma)[..., None].astype(np.uint8)


def _pixel_transform(c):
    """uint8 images -> float32 pixels of the training pipeline (``seed_pair``: this batch's
    dynamic binarisation)."""
    def transform(images, seed_pair):
        images = tf.cast(images, tf.float32) / 255.0
        if c.pixels == "binary":
            images = tf.cast(images > c.threshold, tf.float32)
        elif c.pixels == "dynamic":
            noise = tf.random.stateless_uniform(tf.shape(images), seed=seed_pair)
            images = tf.cast(noise < images, tf.float32)
        return images
    return transform


def _streamed_folder(c, folder, seed: int, with_labels: bool, say, shard=None) -> Splits:
    """A folder read as it goes: the training files reshuffled every epoch, then decoded in
    parallel (see `_streamed`)."""
    from tfvae import image_folders
    files = {k: np.asarray(v) for k, v in folder.files.items()}
    train_idx, val_idx, test_idx = _holdout(len(files["train"]), c, seed, "test" in files,
                                            "validation" in files)
    shape = ((c.image_size, c.image_size) if c.image_size else folder.size) + (folder.channels,)
    megabytes = folder.decoded_bytes(c.image_size) / 2 ** 20
    say(f"note: the folder's {sum(len(f) for f in files.values())} images ({megabytes:.0f} MB "
        f"decoded) exceed data.in_memory_mb={c.in_memory_mb}: streaming them from disk")

    def images(split, held, shuffle=False):
        paths, labels = ((files[split], folder.labels[split]) if split in files and held is None
                         else (files["train"][held], folder.labels["train"][held]))
        if shuffle:  # the training labels data.labels keeps
            labels = keep_labels(labels, c.labels, len(folder.class_names or ()), seed)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle and shard:  # this worker's files only
            ds = ds.shard(*shard)
            paths = paths[shard[1]::shard[0]]
        if shuffle:  # the file order, reshuffled every epoch, before anything is decoded
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        decode = lambda f, y: (tf.ensure_shape(  # noqa: E731
            image_folders.decode(f, folder.channels, c.image_size), shape), y)
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), len(paths)
    return _streamed(c, images("train", train_idx, shuffle=True),
                     images("validation", None if "validation" in files else val_idx),
                     images("test", None if "test" in files else test_idx),
                     shape, seed, with_labels, folder.class_names, shard)


def _streamed_tfds(c, builder, seed: int, with_labels: bool, say, shard=None) -> Splits:
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
    if labels_setting(c.labels) != "all":
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
        ds = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=config)
        if shuffle and shard and config is read:  # fewer files than workers: every n-th example
            ds = ds.shard(*shard)
        if shuffle and shard:
            count = count // shard[0]
        if shuffle:
            ds = ds.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
        return ds.map(lambda ex: (_as_image(ex["image"], c, shape), ex.get(
            "label", tf.constant(-1, tf.int64)) if isinstance(ex, dict) else -1),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), count
    test = (images("test", splits["test"].num_examples) if has_test
            else images(f"train[{n - n_val - n_test}:{n - n_val}]", n_test))
    return _streamed(c, images(f"train[:{n_train}]", n_train, shuffle=True),
                     images(f"train[{n - n_val}:]", n_val), test, shape, seed, with_labels,
                     class_names(c), shard)


def _tfds_shape(builder, c):
    shape = tuple(builder.info.features["image"].shape)
    if None in shape[:2] and not c.image_size:
        raise DataError(f"TFDS {c.name!r} images differ in size ({shape}); set data.image_size=N")
    size = (c.image_size, c.image_size) if c.image_size else shape[:2]
    return tuple(size) + (c.channels or shape[2],)


def _as_image(image, c, shape):
    """A source image uint8 ``[H, W, C]`` at the run's size and channel count."""
    if image.shape[-1] != shape[-1]:
        image = (tf.image.grayscale_to_rgb(image) if shape[-1] == 3
                 else tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))),
                              tf.uint8))
    if c.image_size:
        image = tf.image.resize(tf.cast(image, tf.float32), shape[:2], method="bilinear",
                                antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, shape)


def _streamed(c, train, validation, test, shape, seed: int, with_labels: bool,
              names, shard=None) -> Splits:
    """Batched pipelines from unbatched ``(uint8 image, label)`` datasets (each with its count),
    the training one already shuffled per epoch: training pixels binarised per batch as in
    memory; evaluation pixels binarised once per image (a stateless seed from its index), so
    every pass sees the same pixels. With a ``shard`` the training pipeline is this worker's
    part (its count ``num_train / num_workers``); ``num_train`` stays the whole data set's."""
    (train, num_train), (validation, num_val), (test, num_test) = train, validation, test
    if shard:
        num_train = num_train * shard[0]  # the worker's part times the workers: the whole
    _check_batch(c, num_train)
    pixels = _pixel_transform(c)
    seeds = tf.data.Dataset.random(seed=seed + 7919 * (shard[1] if shard else 0),
                                   rerandomize_each_iteration=True).batch(2)
    train = tf.data.Dataset.zip((train.batch(c.batch_size, drop_remainder=True), seeds)).map(
        lambda xy, s: (pixels(xy[0], s), xy[1]) if with_labels else pixels(xy[0], s))

    def eval_pipeline(ds, stream_seed):
        def fixed(index, example):
            x = tf.cast(example[0], tf.float32) / 255.0
            if c.pixels == "binary":
                x = tf.cast(x > c.threshold, tf.float32)
            elif c.pixels == "dynamic":
                noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack(
                    [tf.constant(stream_seed, tf.int64), index]))
                x = tf.cast(noise < x, tf.float32)
            return (x, tf.cast(example[1], tf.int64)) if with_labels else x
        return ds.enumerate().map(fixed, num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True).batch(c.eval_batch_size).prefetch(2) \
            .with_options(_options())
    options = _options()
    if shard:  # already this worker's part
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
    return Splits(
        train=train.prefetch(2).with_options(options),
        validation=eval_pipeline(validation, EVAL_BINARIZATION_SEED + 1),
        test=eval_pipeline(test, EVAL_BINARIZATION_SEED),
        image_shape=tuple(shape), num_train=num_train, num_validation=num_val,
        num_test=num_test, steps_per_epoch=num_train // c.batch_size,
        class_names=names if with_labels else None, num_classes=len(names or ()),
        num_labelled=num_train if names and labels_setting(c.labels) == "all" else 0)
