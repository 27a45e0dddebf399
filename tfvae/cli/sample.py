"""``tfvae-sample``: look at a trained model, from its SavedModel alone (only TensorFlow needed)
or from a workdir.

    tfvae-sample --saved_model=runs/default/saved_model --out=samples.png [--num=64] [--seed=1]
        [--temperature=0.8] [--oversample=4] [--sampled_pixels]
    tfvae-sample --workdir=runs/default --mode=conditional --num=8 --oversample=6 --out=cond.png
    tfvae-sample --workdir=runs/default --mode=interpolate --indices=3,7 --steps=10 --out=int.png

Modes:
- ``prior``: z ~ p(z) (at a temperature T: each Gaussian's standard deviation, or a flow's base
  noise, times T), then the mean of p(x|z), or pixels x ~ p(x|z) with ``--sampled_pixels``;
  ``--oversample=N`` draws N pixel samples for each z (one row per z) to show what p(x|z) leaves
  to chance.
- ``conditional``: for each of ``--num`` images, z ~ q(z|x) then x' ~ p(x|z), ``--oversample``
  times (the image first in its row).
- ``interpolate``: between the codes (posterior means) of two images, linearly and spherically
  (slerp), decoded to the mean of p(x|z), the two images at the ends.

Images for ``conditional`` and ``interpolate`` come from ``--images`` (a .npy of
[N, H, W, C] in [0, 1]) or the workdir's test split. A workdir without a SavedModel (an
interrupted run) is exported first from its best checkpoint.
"""
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfvae import storage

MODES = ("prior", "conditional", "interpolate")


def slerp(a, b, t):
    """Spherical interpolation between vectors ``a`` and ``b`` at fractions ``t`` ``[T]``
    (linear where they are parallel)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def _seed(seed, offset):
    return tf.constant(seed + offset, tf.int64)


def prior_samples(model, num, seed, temperature=1.0, oversample=1, sampled_pixels=False):
    """``[rows, cols, H, W, C]``: ``num`` prior draws (``oversample`` pixel draws each)."""
    z = model.sample_latents(tf.constant(num, tf.int32), _seed(seed, 0),
                             tf.constant(temperature, tf.float32))["z"]
    if oversample <= 1 and not sampled_pixels:
        images = model.decode(z)["mean"].numpy()
        cols = int(np.ceil(np.sqrt(num)))
        pad = cols * int(np.ceil(num / cols)) - num
        images = np.concatenate([images, np.ones((pad,) + images.shape[1:], images.dtype)])
        return images.reshape((-1, cols) + images.shape[1:])
    draws = [model.decode_sample(z, _seed(seed, 1 + i))["images"].numpy()
             for i in range(max(1, oversample))]
    return np.stack(draws, 1)  # one row per z


def class_samples(model, num, seed, labels=None, temperature=1.0):
    """A conditional model's ``[num, len(labels), H, W, C]``: ``num`` draws z ~ p(z) (one row
    each: the style), decoded with each label (one column each; default every class)."""
    k = int(model.num_classes.numpy())
    labels = list(range(k)) if not labels else [int(y) for y in labels]
    z = model.sample_latents(tf.constant(num, tf.int32), _seed(seed, 0),
                             tf.constant(temperature, tf.float32))["z"]
    columns = [model.decode(z, tf.fill([num], tf.constant(y, tf.int32)))["mean"].numpy()
               for y in labels]
    return np.stack(columns, 1), labels


def conditional_samples(model, images, seed, oversample=6, sampled_pixels=False):
    """Each image, then ``oversample`` draws x' ~ p(x|z), z ~ q(z|x)."""
    rows = [images]
    for i in range(oversample):
        z = model.encode_sample(tf.constant(images), _seed(seed, 2 * i))["z"]
        x = (model.decode_sample(z, _seed(seed, 2 * i + 1))["images"] if sampled_pixels
             else model.decode(z)["mean"])
        rows.append(x.numpy())
    return np.stack(rows, 1)


def interpolation(model, a, b, steps=8):
    """Rows: linear and spherical paths between the posterior means of images ``a``, ``b``,
    each ``[image a, steps decoded points, image b]``."""
    codes = model.encode(tf.constant(np.stack([a, b])))["loc"].numpy()
    t = np.linspace(0.0, 1.0, steps)
    linear = (1 - t)[:, None] * codes[0] + t[:, None] * codes[1]
    spherical = slerp(codes[0], codes[1], t)
    rows = []
    for path in (linear, spherical):
        decoded = model.decode(tf.constant(path, tf.float32))["mean"].numpy()
        rows.append(np.concatenate([a[None], decoded, b[None]]))
    return np.stack(rows)


def _open(saved_model, workdir, say):
    if saved_model:
        return tf.saved_model.load(saved_model), saved_model
    path = os.path.join(workdir, "saved_model")
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return tf.saved_model.load(path), path
    from tfvae.results import export
    from tfvae.training import runs
    opened = runs.open_run(workdir)
    say(f"no SavedModel in {workdir} (an unfinished run): exporting its {opened.source}")
    tmp = tempfile.mkdtemp(prefix="tfvae_sample_")  # never into the workdir: a run may hold it
    try:
        path = export.export(opened.model, os.path.join(tmp, "saved_model"))
        return tf.saved_model.load(path), f"{workdir} ({opened.source})"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # loaded: its variables are in memory


def _load_images(images_path, workdir, count):
    if images_path:
        images = np.load(images_path).astype(np.float32)
    else:
        from tfvae import data
        from tfvae.training import runstate
        config = runstate.read_config(os.path.join(workdir, runstate.CONFIG))
        splits = data.load(config.data, seed=config.seed)
        images = np.concatenate([b.numpy() for b in splits.test.take(
            int(np.ceil(count / config.data.eval_batch_size)) + 1)])
    return images[:count]


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")  # what matplotlib writes


def run(out, saved_model="", workdir="", mode="prior", num=64, seed=None, temperature=1.0,
        oversample=1, sampled_pixels=False, images="", indices=(0, 1), steps=8, say=print,
        labels=()):
    """Writes the PNG ``out`` for ``mode`` and returns the image array drawn. ``labels``: for
    a conditional model, the classes to draw (default all), one column each."""
    from tfvae.errors import ConfigError
    from tfvae.results import plots
    if mode not in MODES:
        raise ConfigError(f"--mode={mode!r}; valid modes are: {', '.join(MODES)}")
    if bool(saved_model) == bool(workdir):
        raise ConfigError("give exactly one of --saved_model=PATH and --workdir=PATH")
    if mode != "prior" and not (images or workdir):
        raise ConfigError(f"--mode={mode} needs images: --images=FILE.npy or --workdir=PATH")
    for name, value, low in (("num", num, 1), ("oversample", oversample, 1),
                             ("steps", steps, 2)):
        if value < low:
            raise ConfigError(f"--{name}={value} must be >= {low}")
    if temperature <= 0:
        raise ConfigError(f"--temperature={temperature} must be > 0")
    storage.output_file(out, "--out", IMAGE_SUFFIXES)
    seed = int(seed) if seed is not None else int(time.time_ns() % (2 ** 31 - 1))
    model, where = _open(saved_model, workdir, say)
    if not hasattr(model, "sample_latents"):
        raise ConfigError(f"{where} was exported by an older tfvae without sample_latents; "
                          "export it again (tfvae.results.export.export) or pass --workdir")
    if hasattr(model, "image_shape") and not plots.is_image(tuple(model.image_shape.numpy())):
        raise ConfigError(f"{where} models features (data.features), not images: there is "
                          "nothing to draw; load it with tf.saved_model.load to sample them")
    conditional = hasattr(model, "sample_conditional")
    if labels and not conditional:
        raise ConfigError(f"--labels: {where} draws no class (its networks do not read a "
                          "label: model.label is 'none' or 'component'); drop --labels")
    if conditional and mode != "prior":
        raise ConfigError(f"--mode={mode} is not offered for a conditional model yet; use "
                          "--mode=prior (with --labels=...)")
    if conditional:
        k = int(model.num_classes.numpy())
        bad = [y for y in labels if not 0 <= int(y) < k]
        if bad:
            raise ConfigError(f"--labels: {bad[0]} is not a class of this model (0..{k - 1})")
        grid, drawn = class_samples(model, min(num, 16), seed, labels, temperature)
        title = f"mean of p(x|z, y): one z ~ p(z) per row, one class per column; seed {seed}"
        rows, cols = (), [f"y={y}" for y in drawn]
    elif mode == "prior":
        grid = prior_samples(model, num, seed, temperature, oversample, sampled_pixels)
        what = "pixels x ~ p(x|z)" if oversample > 1 or sampled_pixels else "mean of p(x|z)"
        title = f"{what}, z ~ p(z), T = {temperature:g}, seed {seed}"
        rows = [f"z{i}" for i in range(len(grid))] if oversample > 1 else ()
        cols = [f"x{j}" for j in range(grid.shape[1])] if oversample > 1 else ()
    elif mode == "conditional":
        x = _load_images(images, workdir, num)
        grid = conditional_samples(model, x, seed, oversample, sampled_pixels)
        what = "pixels x' ~ p(x|z)" if sampled_pixels else "mean of p(x|z)"
        title = f"{what}, z ~ q(z|x): data (first column), {oversample} draws; seed {seed}"
        rows, cols = (), ["data"] + [f"draw {j + 1}" for j in range(oversample)]
    else:
        i, j = indices
        x = _load_images(images, workdir, max(i, j) + 1)
        if max(i, j) >= len(x):
            raise ConfigError(f"--indices={i},{j}: only {len(x)} images")
        grid = interpolation(model, x[i], x[j], steps)
        title = f"Interpolation between images {i} and {j} (codes: posterior means)"
        rows = ["linear", "spherical"]
        cols = [f"x{i}"] + [f"{t:.2f}" for t in np.linspace(0, 1, steps)] + [f"x{j}"]
    plots.labelled_grid(grid, out, title=title, row_labels=rows, col_labels=cols)
    return grid
