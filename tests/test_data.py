"""Data: TFDS and IDX sources, splits, pixel modes, determinism, resize, and clear errors."""
import gzip
import os
import shutil
import struct

import numpy as np
import pytest

from conftest import TFDS_DIR, make_config
from tfvae import data
from tfvae.errors import ConfigError, DataError

MNIST_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _first(ds):
    return next(iter(ds))


def test_tfds_mnist_is_the_real_data(mnist_arrays):
    x, y = mnist_arrays["train"]
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.uint8
    assert mnist_arrays["test"][0].shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(y), MNIST_LABEL_COUNTS)
    assert x.mean() == pytest.approx(33.318, abs=1e-3)


def test_splits_and_sizes(mnist_arrays):
    config = make_config(data__validation_size=1000, data__batch_size=100)
    s = data.load(config.data, seed=0, arrays=mnist_arrays)
    assert (s.num_train, s.num_validation, s.num_test) == (59000, 1000, 10000)
    assert s.image_shape == (28, 28, 1) and s.steps_per_epoch == 590
    assert _first(s.train).shape == (100, 28, 28, 1)
    assert sum(int(b.shape[0]) for b in s.validation) == 1000


@pytest.mark.parametrize("pixels", data.PIXEL_MODES)
def test_pixel_modes(mnist_arrays, pixels):
    config = make_config(data__pixels=pixels, data__train_size=2000)
    s = data.load(config.data, seed=0, arrays=mnist_arrays)
    for ds in (s.train, s.validation, s.test):
        x = _first(ds).numpy()
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
        is_binary = np.isin(x, [0.0, 1.0]).all()
        assert is_binary == (pixels != "continuous")
    if pixels == "dynamic":  # binarisation keeps the mean intensity: E[Bernoulli(p)] = p
        mean = np.mean([b.numpy().mean() for b in s.train])
        assert mean == pytest.approx(33.318 / 255, abs=0.005)


def test_dynamic_binarisation_resamples_each_epoch_and_is_deterministic(mnist_arrays):
    config = make_config(data__pixels="dynamic", data__train_size=1000, data__batch_size=1000)
    a = data.load(config.data, seed=3, arrays=mnist_arrays)
    b = data.load(config.data, seed=3, arrays=mnist_arrays)
    epoch1, epoch2 = _first(a.train).numpy(), _first(a.train).numpy()
    # The same seed reproduces every epoch exactly; each new epoch draws new pixels. One batch
    # is the whole set, so epochs hold the same images: their sorted pixel counts would match
    # if the binarisation were fixed.
    np.testing.assert_array_equal(epoch1, _first(b.train).numpy())
    np.testing.assert_array_equal(epoch2, _first(b.train).numpy())
    assert not np.array_equal(np.sort(epoch1.sum((1, 2, 3))), np.sort(epoch2.sum((1, 2, 3))))
    # Validation and test are binarised once: identical on every pass and every load.
    np.testing.assert_array_equal(_first(a.test).numpy(), _first(a.test).numpy())
    np.testing.assert_array_equal(_first(a.validation).numpy(), _first(b.validation).numpy())
    c = data.load(config.data, seed=4, arrays=mnist_arrays)
    assert not np.array_equal(_first(c.train).numpy(), epoch1)


def test_labels_and_resize(mnist_arrays):
    config = make_config(data__image_size=32, data__train_size=500, data__batch_size=50)
    s = data.load(config.data, seed=0, with_labels=True, arrays=mnist_arrays)
    x, y = _first(s.train)
    assert x.shape == (50, 32, 32, 1) and y.shape == (50,)
    assert s.image_shape == (32, 32, 1)
    config.data.image_size = 64
    assert data.load(config.data, arrays=mnist_arrays).image_shape == (64, 64, 1)


def test_resize_with_no_validation_split(mnist_arrays):
    """data.validation_size = 0 leaves an empty split, which resizes to an empty split."""
    config = make_config(data__image_size=64, data__validation_size=0, data__train_size=300,
                         data__batch_size=50)
    s = data.load(config.data, seed=0, arrays=mnist_arrays)
    assert s.image_shape == (64, 64, 1) and s.num_validation == 0
    assert _first(s.train).shape == (50, 64, 64, 1)


def test_fashion_mnist_sample_loads_through_idx(fashion_idx_dir):
    arrays = data.load_idx_dir(fashion_idx_dir)
    x, y = arrays["train"]
    assert x.shape == (3615, 28, 28, 1) and x.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10)) and "test" not in arrays
    config = make_config(data__source="idx", data__idx_dir=fashion_idx_dir,
                         data__validation_size=500, data__test_size=500, data__pixels="continuous")
    s = data.load(config.data, seed=0, with_labels=True)
    assert (s.num_train, s.num_validation, s.num_test) == (2615, 500, 500)
    config.data.test_size = 0
    with pytest.raises(DataError, match="data.test_size=N"):
        data.load(config.data)


# ---------------------------------------------------------------- bad input gets a clear error
def _write_idx(path, array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_truncated_gzip_names_the_file(tmp_path, fashion_idx_dir):
    src = os.path.join(fashion_idx_dir, "train-images-idx3-ubyte.gz")
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(open(src, "rb").read()[:50000])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot be decompressed.*truncated"):
        data.read_idx(str(bad))


def test_truncated_payload_and_bad_magic(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte")
    _write_idx(path, np.zeros((10, 4, 4)))
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-7])
    with pytest.raises(DataError, match=r"header says shape \(10, 4, 4\).*153 bytes"):
        data.read_idx(path)
    open(path, "wb").write(b"PK\x03\x04" + raw[4:])
    with pytest.raises(DataError, match="not an IDX file"):
        data.read_idx(path)


def test_image_and_label_counts_must_agree(tmp_path):
    _write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), np.zeros((10, 4, 4)))
    _write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), np.zeros((9,)))
    with pytest.raises(DataError, match="holds 10 images but .* holds 9 labels"):
        data.load_idx_dir(str(tmp_path))


def test_missing_idx_files(tmp_path):
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        data.load_idx_dir(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        data.load_idx_dir(str(tmp_path / "nope"))


def test_tfds_dataset_not_in_data_dir(tmp_path):
    shutil.copytree(os.path.join(TFDS_DIR, "mnist"), tmp_path / "mnist")
    with pytest.raises(DataError, match=r"cannot load TFDS data set 'fashion_mnist'.*data.data_dir"):
        data.load_tfds("fashion_mnist", str(tmp_path), download=False)
    with pytest.raises(ConfigError, match="not a TFDS data set"):
        data.load_tfds("no_such_dataset_xyz", str(tmp_path), download=False)


@pytest.mark.parametrize("override, message", [
    ({"data__pixels": "grey"}, "valid pixel modes are: binary, continuous, dynamic"),
    ({"data__source": "s3"}, "valid sources are: arrays, dsprites, folder, idx, tfds"),
    ({"data__batch_size": 0}, "batch_size=0"),
    ({"data__threshold": 1.5}, "threshold=1.5"),
    ({"data__source": "idx"}, "needs data.idx_dir"),
])
def test_bad_data_config(override, message):
    with pytest.raises(ConfigError, match=message):
        data.validate(make_config(**override).data)


def test_validation_size_too_large(mnist_arrays):
    config = make_config(data__validation_size=60000)
    with pytest.raises(ConfigError, match="leaves no training images"):
        data.load(config.data, arrays=mnist_arrays)


def test_a_tfds_set_larger_than_memory_streams_with_the_same_evaluation_data(mnist_arrays):
    """Above data.in_memory_mb, TFDS data streams: with data.validation_split='last' its
    validation and test images and labels are exactly the in-memory ones."""
    config = make_config(data__pixels="binary", data__validation_split="last",
                         data__validation_size=500)
    memory = data.load(config.data, with_labels=True, arrays=mnist_arrays)
    config.data.in_memory_mb = 0
    notes = []
    streamed = data.load(config.data, with_labels=True, say=notes.append)
    assert "streaming it" in notes[0]
    assert (streamed.num_train, streamed.num_validation, streamed.num_test) == (59500, 500, 10000)
    for split in ("validation", "test"):
        a, b = getattr(memory, split), getattr(streamed, split)
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    x, y = _first(streamed.train)
    assert x.shape == (config.data.batch_size, 28, 28, 1) and set(np.unique(x)) <= {0.0, 1.0}
    config.data.channels = 3  # grey made colour, streamed and in memory alike
    assert data.load(config.data).image_shape == (28, 28, 3)
    config.data.in_memory_mb = 1024
    rgb = data.load(config.data, arrays=mnist_arrays)
    assert rgb.image_shape == (28, 28, 3)
    first = _first(rgb.test).numpy()
    np.testing.assert_array_equal(first[..., 0], first[..., 2])


def test_a_tfds_set_without_supervised_keys_loads_in_memory_as_it_streams(tmp_path):
    """A TFDS set made by `tfds.dataset_builders.store_as_tfds_dataset` has no supervised keys:
    read into memory (in blocks) it holds exactly the images and labels it streams."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 30)

    def split(a, b):  # store_as_tfds_dataset wants every split of one dataset type
        return tf.data.Dataset.range(1).flat_map(lambda _: tf.data.Dataset.from_tensor_slices(
            {"image": images[a:b], "label": labels[a:b]}))
    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_unsupervised", version="1.0.0", data_dir=str(tmp_path),
        features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 1)),
                                             "label": tfds.features.ClassLabel(num_classes=3)}),
        split_datasets={"train": split(0, 20), "test": split(20, 30)}, disable_shuffling=True)
    arrays = data.tfds.load_tfds("tiny_unsupervised", str(tmp_path), download=False)
    np.testing.assert_array_equal(arrays["train"][0], images[:20])
    np.testing.assert_array_equal(arrays["test"][1], labels[20:])
    config = make_config(data__name="tiny_unsupervised", data__data_dir=str(tmp_path),
                         data__download=False, data__validation_size=5,
                         data__validation_split="last", data__batch_size=5,
                         data__eval_batch_size=5, data__pixels="binary")
    memory = data.load(config.data, with_labels=True)
    config.data.in_memory_mb = 0
    streamed = data.load(config.data, with_labels=True, say=lambda *_: None)
    for name in ("validation", "test"):
        for (xa, ya), (xb, yb) in zip(getattr(memory, name), getattr(streamed, name)):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_in_memory_images_are_shared_with_tensorflow_not_copied():
    """`memory.as_tensor` hands TensorFlow the array's own buffer (a write to the array shows in
    the tensor) where it is aligned, as the TFDS reader's arrays are; an unaligned array is
    copied once into an aligned buffer, and either works in a tf.data pipeline."""
    import tensorflow as tf
    from tfvae.data import memory
    shared = memory.aligned_empty((1000, 28, 28, 1), np.uint8)
    shared[...] = 3
    tensor = memory.as_tensor(shared)
    shared[0, 0, 0, 0] = 200
    assert int(tensor[0, 0, 0, 0]) == 200
    unaligned = np.arange(1001, dtype=np.uint8)[1:]
    copied = memory.as_tensor(unaligned)
    unaligned[0] = 0
    assert int(copied[0]) == 1
    ds = tf.data.Dataset.range(10).batch(5).map(lambda i: tf.gather(copied, i))
    assert [int(b.numpy().sum()) for b in ds.with_options(
        memory.pipeline_options(tf.data.Options()))] == [15, 40]
