#!/usr/bin/env python3
"""How much M1+M2's test error depends on which pixels M1 encodes at test time.

    python scripts/experiments/m1m2_test_pixels.py --run=runs/m1m2_mnist_100_seed0 [--draws=10]

tfvae's M1+M2 (`tfvae.training.runs.load_data`) classifies the code E_q[z|x] of a test image binarised
once (``data.pixels='dynamic'``: a fixed Bernoulli draw of its grey levels per image). The
authors' code [2] encodes the grey levels themselves (its M1 reads intensities). This script
opens a run's best weights and gives its test error with three codes of the same images:

- ``binarised once``: the run's own test features (what ``results.json`` reports);
- ``mean over D binarisations``: E_q[z|x] averaged over D fresh Bernoulli draws of each image;
- ``grey levels``: E_q[z|x] of the intensities, as [2] (an input M1 was not trained on when M1
  trained on binarised images: say so beside the number).

Each with its binomial standard error. Nothing is trained; the run may be unfinished (its best
checkpoint so far is used, and the script says which).

References:
    [1] Kingma, Rezende, Mohamed, Welling. Semi-supervised Learning with Deep Generative Models.
        NeurIPS 2014.
    [2] https://github.com/dpkingma/nips14-ssl, ``learn_yz_x_ss.py``.
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet

import numpy as np
from absl import app, flags

import tensorflow as tf  # noqa: E402

from tfvae import data as data_lib  # noqa: E402
from tfvae.training import runs  # noqa: E402
from tfvae.distributions import posteriors

flags.DEFINE_string("run", None, "workdir of an M1+M2 run (data.features set)", required=True)
flags.DEFINE_integer("draws", 10, "binarisations averaged over in the second row")
FLAGS = flags.FLAGS


def _error(model, codes, labels):
    wrong = tf.argmax(model.classify(codes, training=False), -1, output_type=tf.int32) != labels
    p = float(tf.reduce_mean(tf.cast(wrong, tf.float64)))
    return 100 * p, 100 * np.sqrt(p * (1 - p) / int(tf.size(labels)))


def main(_):
    run = runs.open_run(FLAGS.run)
    config = run.config
    if not config.data.features:
        raise SystemExit(f"--run={FLAGS.run}: not an M1+M2 run (its data.features is empty)")
    print(f"{FLAGS.run}: {run.source}")
    m1 = runs.open_run(config.data.features).model
    # The kept dimensions exactly as load_data chose them (same data, seed and images).
    raw = data_lib.load(config.data, seed=config.seed, with_labels=True)
    keep = runs._varying_dimensions(m1, raw.train, config.data.features_min_sd, "features")

    def codes_of(x):
        return tf.gather(posteriors.code(m1.encode(x, training=False)), keep, axis=-1)[
            :, None, None, :]

    own, labels = [], []
    for codes, y in run.splits.test:
        own.append(codes)
        labels.append(tf.cast(y, tf.int32))
    own, labels = tf.concat(own, 0), tf.concat(labels, 0)

    grey_config = config.data.copy_and_resolve_references()
    grey_config.pixels = "continuous"
    grey = data_lib.load(grey_config, seed=config.seed, with_labels=True)
    grey_codes, averaged, rng = [], [], tf.random.Generator.from_seed(config.seed)
    for x, _ in grey.test:
        grey_codes.append(codes_of(x))
        draws = [codes_of(tf.cast(rng.uniform(tf.shape(x)) < x, tf.float32))
                 for _ in range(FLAGS.draws)]
        averaged.append(tf.add_n(draws) / FLAGS.draws)
    rows = [("binarised once (the run's own test features)", own),
            (f"mean over {FLAGS.draws} binarisations", tf.concat(averaged, 0)),
            ("grey levels, as the authors' code"
             + (" (M1 trained on binarised images)" if config.data.pixels != "continuous"
                else ""), tf.concat(grey_codes, 0))]
    print(f"test error of q(y|x), {int(tf.size(labels))} test images, {int(tf.size(keep))} "
          "kept dimensions of M1's code:")
    print("| M1 encodes | test error (%) |\n| --- | ---: |")
    for name, codes in rows:
        err, se = _error(run.model, codes, labels)
        print(f"| {name} | {err:.2f} +- {se:.2f} |")


if __name__ == "__main__":
    app.run(main)
