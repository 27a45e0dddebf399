"""Your own images: a folder of PNG/JPEG files (grey or colour, class subfolders, split folders)
and .npz/.npy arrays, in memory or streamed from disk; every bad input is one line naming the
file and the fix. The images are real MNIST digits that the tests write themselves."""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from commands import command
from conftest import make_config
from tfvae import data
from tfvae.errors import DataError

PER_CLASS = 40


def _colour(digits, k):
    """Grey digits -> RGB: red = the digit, green = the digit times k / 2, blue = its negative."""
    return np.stack([digits, (digits * (k / 2)).astype(np.uint8), 255 - digits], -1)


def _write(root, mnist_arrays, rgb=False, classes=3, fmt="png", per_class=PER_CLASS, offset=0):
    x, y = mnist_arrays["train"]
    written = {}
    for k in range(classes):
        os.makedirs(os.path.join(root, f"digit{k}"), exist_ok=True)
        idx = np.flatnonzero(y == k)[offset:offset + per_class]
        images = _colour(x[idx, ..., 0], k) if rgb else x[idx, ..., 0]
        for i, image in zip(idx, images):
            path = os.path.join(root, f"digit{k}", f"{i:05d}.{fmt}")
            Image.fromarray(image).save(path)
            written[path] = (image if rgb else image[..., None], k)
    return written


def _config(path, **overrides):
    settings = dict(data__source="folder", data__path=str(path), data__test_size=20,
                    data__validation_size=20, data__batch_size=20, data__pixels="continuous")
    return make_config(**(settings | overrides))


def _all(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("rgb", [False, True])
def test_a_folder_of_class_subfolders_gives_its_images_and_labels(tmp_path, mnist_arrays, rgb):
    written = _write(tmp_path, mnist_arrays, rgb=rgb)
    splits = data.load(_config(tmp_path).data, seed=0, with_labels=True)
    channels = 3 if rgb else 1
    assert splits.image_shape == (28, 28, channels)
    assert splits.class_names == ("digit0", "digit1", "digit2")
    assert (splits.num_train, splits.num_validation, splits.num_test) == (80, 20, 20)
    # Every test image is one of the files, exactly, with its folder's label.
    by_bytes = {(img.tobytes()): k for img, k in written.values()}
    x, y = _all(splits.test)
    for image, label in zip(x, y):
        assert by_bytes[np.round(image * 255).astype(np.uint8).tobytes()] == label


def test_split_folders_are_used_as_given(tmp_path, mnist_arrays):
    _write(tmp_path / "train", mnist_arrays, per_class=30)
    _write(tmp_path / "test", mnist_arrays, per_class=10, offset=100)
    splits = data.load(_config(tmp_path, data__test_size=0).data, seed=0, with_labels=True)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (70, 20, 30)
    _, y = _all(splits.test)
    assert sorted(np.bincount(y)) == [10, 10, 10]


def test_streaming_a_large_folder_gives_the_same_data(tmp_path, mnist_arrays):
    """A folder above data.in_memory_mb is read from disk as it goes: same splits, same
    evaluation pixels (binarised once per image), the same shuffle of the training files."""
    _write(tmp_path, mnist_arrays, rgb=True)
    notes = []
    memory = data.load(_config(tmp_path, data__pixels="binary").data, seed=3, with_labels=True)
    streamed = data.load(_config(tmp_path, data__pixels="binary", data__in_memory_mb=0).data,
                         seed=3, with_labels=True, say=notes.append)
    assert "streaming them from disk" in notes[0]
    assert streamed.image_shape == memory.image_shape == (28, 28, 3)
    for split in ("validation", "test"):
        a, b = _all(getattr(memory, split)), _all(getattr(streamed, split))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    (xa, ya), (xb, yb) = next(iter(memory.train)), next(iter(streamed.train))
    np.testing.assert_array_equal(xa.numpy(), xb.numpy())
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    # Dynamic binarisation streams too: fixed evaluation pixels, fresh training pixels per epoch.
    dyn = data.load(_config(tmp_path, data__pixels="dynamic", data__in_memory_mb=0).data, seed=3)
    a, b = next(iter(dyn.test)).numpy(), next(iter(dyn.test)).numpy()
    assert set(np.unique(a)) <= {0.0, 1.0} and np.array_equal(a, b)


def test_resize_and_channel_conversion(tmp_path, mnist_arrays):
    _write(tmp_path, mnist_arrays, fmt="jpg")
    splits = data.load(_config(tmp_path, data__image_size=32, data__channels=3).data)
    assert splits.image_shape == (32, 32, 3)
    x = next(iter(splits.train)).numpy()
    assert x.shape == (20, 32, 32, 3) and np.allclose(x[..., 0], x[..., 2])  # grey made colour


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no images"),
    ("not_an_image", r"notes\.txt: not an image file .*move it out of"),
    ("truncated", r"digit1/.*\.png: not a readable image .*corrupt or truncated: replace or "
                  r"remove it, or set data.bad_images='skip'"),
    ("sizes", r"images differ in size: .* is 28x28, .* is 20x20; set data.image_size=N"),
    ("grey_and_colour", r"grey and colour images are mixed: .* is grey, .* is colour; set "
                        r"data.channels=3"),
    ("files_and_folders", "holds both image files .* and subfolders"),
    ("split_classes", r"has classes \['digit0', 'digit1'\] but .* has \['digit0', 'digit1', "
                      r"'digit2'\]"),
    ("not_a_folder", "is not a folder"),
])
def test_bad_folders_are_one_line_naming_the_file_and_the_fix(tmp_path, mnist_arrays, case,
                                                             message):
    root = tmp_path / "images"
    if case != "not_a_folder":
        root.mkdir()
    if case in ("not_an_image", "truncated", "sizes", "grey_and_colour", "files_and_folders"):
        _write(root, mnist_arrays, per_class=5)
    if case == "not_an_image":
        (root / "digit0" / "notes.txt").write_text("hello")
    elif case == "truncated":
        path = sorted((root / "digit1").iterdir())[2]
        path.write_bytes(path.read_bytes()[:60])
    elif case == "sizes":
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "digit2" / "small.png")
    elif case == "grey_and_colour":
        Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / "digit2" / "rgb.png")
    elif case == "files_and_folders":
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "loose.png")
    elif case == "split_classes":
        _write(root / "train", mnist_arrays, per_class=5)
        _write(root / "test", mnist_arrays, classes=2, per_class=5)
    with pytest.raises(DataError, match=message) as err:
        data.load(_config(root).data)
    assert "\n" not in str(err.value)


def test_unreadable_images_can_be_skipped(tmp_path, mnist_arrays):
    _write(tmp_path, mnist_arrays)
    bad = sorted((tmp_path / "digit1").iterdir())[:3]
    for path in bad:
        path.write_bytes(path.read_bytes()[:50])
    notes = []
    splits = data.load(_config(tmp_path, data__bad_images="skip").data, say=notes.append)
    assert splits.num_train + splits.num_validation + splits.num_test == 3 * PER_CLASS - 3
    assert notes and "skipped 3 unreadable images" in notes[0]


def test_arrays_from_npz_npy_and_python(tmp_path, mnist_arrays):
    x, y = mnist_arrays["train"]
    x, y = x[:300], y[:300]
    np.savez(tmp_path / "digits.npz", images=x[..., 0], labels=y, test_images=x[:50] / 255.0)
    splits = data.load(make_config(data__source="arrays", data__path=str(tmp_path / "digits.npz"),
                                   data__pixels="continuous", data__batch_size=50,
                                   data__validation_size=50).data,
                       with_labels=True)
    assert splits.image_shape == (28, 28, 1) and splits.num_test == 50
    xt, yt = _all(splits.test)
    np.testing.assert_allclose(xt, x[:50] / 255.0, atol=1e-6)
    assert np.all(yt == -1)  # test images without labels
    np.save(tmp_path / "digits.npy", _colour(x[..., 0], 1))
    splits = data.load(make_config(data__source="arrays", data__path=str(tmp_path / "digits.npy"),
                                   data__test_size=50, data__validation_size=50,
                                   data__batch_size=50).data)
    assert splits.image_shape == (28, 28, 3)
    # From Python: NumPy arrays, or a tf.data.Dataset of (image, label) pairs.
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    arrays = data.from_arrays(ds)
    np.testing.assert_array_equal(arrays["train"][0], x)
    np.testing.assert_array_equal(arrays["train"][1], y)


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


@pytest.mark.parametrize("arrays, message", [
    ({"pictures": np.zeros((5, 4, 4), np.uint8)}, r"has no array named 'images' \(it holds: "
                                                  r"pictures\); save your images as np.savez"),
    ({"images": np.zeros((5, 4, 4), np.uint8), "labels": np.zeros(4, np.int64)},
     r"5 images but labels of shape \(4,\)"),
    ({"images": np.full((5, 4, 4), 2.0, np.float32)},
     r"bad.npz: float pixels outside \[0, 1\] \(from 2 to 2\), 80 values in 5 images, the first "
     r"in image 0; scale them to \[0, 1\]"),
    ({"images": _with(np.full((5, 4, 4), 0.5, np.float32), (3, 1, 2), np.nan)},
     r"bad.npz: NaN or infinite pixels, 1 values in 1 images, the first in image 3; replace or "
     r"drop those images"),
    ({"images": _with(_with(np.zeros((5, 4, 4), np.float64), (4, 0, 0), np.inf), (2, 3, 3),
                      -np.inf)},
     r"NaN or infinite pixels, 2 values in 2 images, the first in image 2"),
    ({"images": _with(np.zeros((5, 4, 4), np.int32), (1, 0, 0), 300)},
     r"integer pixels outside 0..255 \(from 0 to 300\), 1 values in 1 images, the first in "
     r"image 1"),
    ({"images": np.zeros((5, 4, 4), np.uint8), "labels": np.array([0, 1, 2.5, 1, 0])},
     r"labels that are not integers \(1 of 5, the first at index 2: 2.5\)"),
    ({"images": np.zeros((5, 4, 4), np.uint8), "labels": np.array([0, 1, 1, 0, np.nan])},
     r"labels that are not integers \(1 of 5, the first at index 4"),
    ({"images": np.zeros((5, 4, 4), np.uint8), "test_images": np.zeros((3, 5, 5), np.uint8)},
     r"test_images of shape \(5, 5, 1\) but images of \(4, 4, 1\)"),
    ({"images": np.zeros((5, 4, 4, 2), np.uint8)}, r"shape \(5, 4, 4, 2\); expected"),
])
def test_bad_array_files_are_one_line(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as err:
        data.load(make_config(data__source="arrays", data__path=str(path), data__test_size=1,
                              data__validation_size=1, data__batch_size=1).data)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_train_on_a_colour_folder_and_sample_colour_images(tmp_path, mnist_arrays):
    """The whole path in colour: a folder of RGB PNGs, the CNN, the Bernoulli likelihood per
    channel, figures, and a SavedModel whose samples are H x W x 3."""
    _write(tmp_path / "images", mnist_arrays, rgb=True)
    workdir = tmp_path / "run"
    out = subprocess.run([*command("train"), f"--workdir={workdir}",
                          "--config.data.source=folder", f"--config.data.path={tmp_path/'images'}",
                          "--config.data.test_size=20", "--config.data.validation_size=20",
                          "--config.data.batch_size=20", "--config.model.network.name=cnn",
                          "--config.model.network.hidden=64,", "--config.train.epochs=2",
                          "--config.eval.iw_samples=10"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    # bits/dim counts every channel: 28 x 28 x 3 dimensions.
    t = results["test"]
    assert t["bits_per_dim"]["mean"] == pytest.approx(
        -t["log_likelihood"]["mean"] / (28 * 28 * 3 * np.log(2)), rel=1e-6)
    exported = tf.saved_model.load(str(workdir / "saved_model"))
    samples = exported.sample(tf.constant(4))["images"]
    assert samples.shape == (4, 28, 28, 3)
    image = np.asarray(Image.open(workdir / "samples.png"))
    assert image.ndim == 3 and image.shape[-1] >= 3
    png = tmp_path / "drawn.png"
    out = subprocess.run([*command("sample"), f"--saved_model={workdir / 'saved_model'}",
                          f"--out={png}", "--num=4", "--seed=1"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and png.exists(), out.stderr[-2000:]


@pytest.mark.parametrize("likelihood, pixels", [
    ("bernoulli", "binary"), ("continuous_bernoulli", "continuous"),
    ("discretized_logistic", "continuous"), ("discretized_logistic_mixture", "continuous"),
    ("categorical", "continuous")])
@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_every_likelihood_and_network_takes_colour(likelihood, pixels, network):
    """Per channel: the event is H x W x 3, and log p(x|z) is the sum of the per-pixel,
    per-channel log-probabilities over all three channels."""
    from tfvae.models import builder
    config = make_config(data__pixels=pixels, model__likelihood__name=likelihood,
                         model__network__name=network, model__network__hidden=(16,),
                         model__latent_dims=(4,))
    vae = builder.build(config, (8, 8, 3))
    z = tf.zeros([2, 4])
    x = tf.fill([2, 8, 8, 3], 1.0 if pixels == "binary" else 128 / 255)
    px = vae.likelihood(z)
    assert px.event_shape == (8, 8, 3) and px.sample(seed=(1, 2)).shape == (2, 8, 8, 3)
    per_channel = [px.distribution.log_prob(x)[..., c] for c in range(3)]
    np.testing.assert_allclose(px.log_prob(x).numpy(),
                               sum(tf.reduce_sum(p, [1, 2]).numpy() for p in per_channel),
                               rtol=1e-5)
    terms = vae.elbo_terms(x)
    assert np.all(np.isfinite(terms.elbo.numpy()))


def test_a_streamed_folder_is_sharded_by_worker(tmp_path, mnist_arrays):
    """Under multi_worker each worker streams its own part of the training files: the parts
    are disjoint and together are every training image, and tf.distribute is told not to
    shard them again."""
    _write(tmp_path, mnist_arrays, rgb=False)
    config = _config(tmp_path, data__pixels="continuous", data__in_memory_mb=0,
                     data__batch_size=8).data
    whole = data.load(config, seed=3, say=lambda m: None)
    parts = [data.load(config, seed=3, say=lambda m: None, shard=(2, i)) for i in range(2)]

    def epoch(splits):  # one pass over the training images, as byte strings
        n = splits.num_train // 2 // 8
        return {x.tobytes() for batch in splits.train.take(n) for x in batch.numpy()}
    seen = [epoch(p) for p in parts]
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    everything = {x.tobytes() for batch in whole.train.take(whole.num_train // 8)
                  for x in batch.numpy()}
    assert seen[0] | seen[1] <= everything
    assert len(seen[0] | seen[1]) >= len(everything) - 2 * 8  # all but the dropped remainders
    assert parts[0].num_train == pytest.approx(whole.num_train, abs=1)
    policy = parts[0].train.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.OFF
