#!/usr/bin/env python3
"""The authors' own trained M1 (Kingma, Rezende, Mohamed and Welling 2014) as a tfvae run, so
that tfvae's M2 can be trained on the features the paper's M1+M2 used.

    # the weights: models/mnist_z_x_50-500-500_longrun/{v,w}.ndict.tar.gz of dpkingma/nips14-ssl
    python scripts/experiments/m1_authors.py --weights=DIR --workdir=runs/m1_authors \
        --config.data.source=idx --config.data.idx_dir=../shared/data/mnist
    tfvae-train --config=configs/semi_supervised.py:mnist,100,m1=runs/m1_authors --config.seed=0 \
        --workdir=runs/m1m2_authors_mnist_100_seed0 --config.data.source=idx ...

Why: tfvae's M1+M2 with its own M1 (`configs/semi_supervised.py:mnist,m1`, 600-600, 200
epochs) is 1.9 points of test error above the paper's 3.33% with 100 labels
(docs/REPRODUCTION.md). One candidate is M1 itself: the authors' code [2] encodes the images
with their pre-trained 500-500 "longrun" model. With its weights in a tfvae workdir, an M1+M2
run differs from ours in M1 alone (the same data, labels, seeds and M2).

The workdir is a finished tfvae run like any other (``tfvae-evaluate`` and ``tfvae-sample``
read it; M1+M2 finds it through ``data.features``) whose one checkpoint holds the authors'
weights. Nothing is trained: ``results.json`` has ``epochs_trained`` 0 and ``stopped``
"imported", and its test numbers are tfvae's own evaluation of those weights on this data.

The model is `configs/semi_supervised.py:mnist,m1` with the authors' sizes (500-500 softplus,
latent 50, Bernoulli p(x|z)) and their q(z|x) parameterisation: a mean and a log-variance
per unit, read here as sigma = exp(s) with s = log-variance / 2 (``model.posterior.scale``
'exp'). Their ``anglepy`` layers compute W h + b with W ``[out, in]``; Keras's Dense computes
h K + b, so K = W^T. Before anything is written, the script checks that tfvae's model gives
the authors' q(z|x) and p(x|z) on test images, computed from their formulas in NumPy.

The authors' M1 was trained on their MNIST split (the first 50,000 training images; the last
10,000 for validation: tfvae's ``validation_split='last'``), on grey levels. tfvae's M1+M2
binarises dynamically and encodes the binarised images (our M1 is trained on those);
`scripts/experiments/m1m2_test_pixels.py` measures what encoding the grey levels instead changes.

References:
  [1] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep
      Generative Models. NeurIPS.
  [2] https://github.com/dpkingma/nips14-ssl: ``learn_yz_x_ss.py`` (loads
      ``models/mnist_z_x_50-500-500_longrun/v.ndict.tar.gz`` and ``w.ndict.tar.gz``),
      ``anglepy/models/VAE_Z_X.py`` (the network), ``anglepy/ndict.py`` (the file format).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
from common import config_flag
import io
import os
import shutil
import tarfile

import numpy as np
from absl import app, flags

import tensorflow as tf  # noqa: E402

from tfvae import data as data_lib  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.training import checkpoints
from tfvae.results import evaluation
from tfvae.errors import ConfigError, DataError, WorkdirError  # noqa: E402

CONFIG = os.path.join(common.REPO, "configs", "semi_supervised.py")
config_flag("M1's config (the data flags are the ones to change).", f"{CONFIG}:mnist,m1")
flags.DEFINE_string("weights", None, "folder with the authors' v.ndict.tar.gz (q(z|x)) and "
                    "w.ndict.tar.gz (p(x|z))", required=True)
flags.DEFINE_string("workdir", None, "the new workdir (must not hold a finished run)",
                    required=True)
FLAGS = flags.FLAGS


def load_ndict(path: str) -> dict:
    """An ``anglepy.ndict.savez`` file: a .tar.gz of ``arrays.npz`` (``arr_i``) and
    ``names.txt`` (the i-th line names ``arr_i``)."""
    with tarfile.open(path) as tar:
        names = tar.extractfile("names.txt").read().decode().split()
        arrays = np.load(io.BytesIO(tar.extractfile("arrays.npz").read()))
        return {name: arrays[f"arr_{i}"] for i, name in enumerate(names)}


def _softplus(a):
    return np.logaddexp(a, 0.0)


def hidden_sizes(v, w):
    """The hidden layer sizes of q(z|x) (``w0``, ``w1``, ... of ``v``), bottom first. tfvae's
    MLP decoder mirrors them, so p(x|z)'s (of ``w``) must be the same reversed."""
    q = tuple(v[f"w{i}"].shape[0] for i in range(len(v)) if f"w{i}" in v)
    p = tuple(w[f"w{i}"].shape[0] for i in range(len(w)) if f"w{i}" in w)
    if p != tuple(reversed(q)):
        raise SystemExit(f"the weights' q(z|x) has hidden sizes {q} and p(x|z) {p}; tfvae's "
                         "MLP decoder mirrors the encoder, so p's must be q's reversed")
    return q


def authors_q(v, x):
    """q(z|x) of [2] (VAE_Z_X.factors): ``(mean, logvar)``, each ``[B, n_z]``; x
    ``[B, n_x]``."""
    h = x.T
    for i in range(sum(k.startswith("w") for k in v)):
        h = _softplus(v[f"w{i}"] @ h + v[f"b{i}"])
    return (v["mean_w"] @ h + v["mean_b"]).T, (v["logvar_w"] @ h + v["logvar_b"]).T


def authors_logits(w, z):
    """The Bernoulli logits of p(x|z) of [2], ``[B, n_x]``; z ``[B, n_z]``."""
    h = z.T
    for i in range(sum(k.startswith("w") for k in w)):
        h = _softplus(w[f"w{i}"] @ h + w[f"b{i}"])
    return (w["out_w"] @ h + w["out_b"]).T


def set_weights(model, v, w) -> None:
    """The authors' arrays into tfvae's M1 (K = W^T; the log-variance head halved)."""
    def dense(name, kernel, bias):
        layer = model.encoder.get_layer(name) if name.startswith("encoder") else \
            model.decoder.get_layer(name)
        layer.set_weights([kernel.astype(np.float32), bias.reshape(-1).astype(np.float32)])

    for i in range(len(hidden_sizes(v, w))):
        dense(f"encoder_dense{i}", v[f"w{i}"].T, v[f"b{i}"])
        dense(f"decoder_dense{i}", w[f"w{i}"].T, w[f"b{i}"])
    dense("encoder_out", np.concatenate([v["mean_w"].T, v["logvar_w"].T / 2], 1),
          np.concatenate([v["mean_b"], v["logvar_b"] / 2]))
    dense("decoder_out", w["out_w"].T, w["out_b"])


def check_against_authors(model, v, w, x) -> str:
    """Raises unless tfvae's q(z|x) and p(x|z) equal [2]'s formulas on ``x`` (float32
    round-off); returns what was compared."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    mean, logvar = authors_q(v, flat)
    q = model.encode(tf.constant(x, tf.float32), training=False)
    errors = {"mean of q(z|x)": np.abs(q.mean().numpy() - mean).max(),
              "sd of q(z|x)": np.abs(q.stddev().numpy() - np.exp(logvar / 2)).max()}
    logits = model.decode(tf.constant(mean, tf.float32)).numpy().reshape(len(x), -1)
    errors["logits of p(x|z)"] = np.abs(logits - authors_logits(w, mean)).max()
    bad = {k: f"{e:.3g}" for k, e in errors.items() if not e < 1e-3}
    if bad:
        raise SystemExit(f"tfvae's model does not reproduce the authors' network (largest "
                         f"differences {bad}); are these the weights of a VAE_Z_X with "
                         "softplus layers? Nothing was written")
    return ", ".join(f"{k} {e:.1e}" for k, e in errors.items())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    paths = [os.path.join(FLAGS.weights, f"{part}.ndict.tar.gz") for part in ("v", "w")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"--weights={FLAGS.weights}: no {', '.join(missing)}; give the folder "
                         "models/mnist_z_x_50-500-500_longrun of dpkingma/nips14-ssl")
    v, w = (load_ndict(p) for p in paths)
    config = FLAGS.config
    config.model.network.hidden = hidden_sizes(v, w)
    config.model.network.activation = "softplus"
    config.model.latent_dims = (int(v["mean_w"].shape[0]),)
    config.model.posterior.scale = "exp"
    if not config.data.labels == "none":
        raise SystemExit("--config must be an M1 config (data.labels='none')")
    new = not os.path.exists(FLAGS.workdir)
    try:
        state = train.prepare(config, FLAGS.workdir)  # config.json: a run like any other
    except (ConfigError, DataError, WorkdirError) as err:  # nothing written: one line
        raise SystemExit(f"m1_authors.py: error: {err}") from None
    model = state.model
    set_weights(model, v, w)
    x = data_lib.images_of(next(iter(state.splits.test))).numpy()
    try:
        checked = check_against_authors(model, v, w, x)
    except SystemExit:
        if new:  # only prepare's config.json was written: leave nothing behind
            shutil.rmtree(FLAGS.workdir)
        raise
    print(f"checked against the authors' formulas on {len(x)} test images, largest "
          f"differences: {checked}")
    # The one best checkpoint: epoch 0, the validation ELBO of these weights.
    val = evaluation.evaluate(model, state.splits.validation, seed=config.seed)
    value = float(evaluation.value(val["elbo"]))
    checkpoints.write_best(os.path.join(FLAGS.workdir, "checkpoints"), model, 0, value)
    state.rundir.update_state(phase="trained", stopped="imported",
                              imported_from="dpkingma/nips14-ssl "
                                            "models/mnist_z_x_50-500-500_longrun (v, w)")
    results = train.finalize(state).results
    print(evaluation.summary(results["test"], split="test"))
    print(f"validation ELBO {value:.2f}; written: {FLAGS.workdir}")


if __name__ == "__main__":
    app.run(main)
