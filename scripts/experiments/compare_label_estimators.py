"""How should M2 handle y for an unlabelled image? Trains one semi-supervised config with each
`tfvae.inference.label_estimators` estimator (enumerate, score_function, gumbel_softmax) over seeds, at
equal epochs, and compares test classification error, the test bound U(x) (y enumerated at
evaluation, whatever trained it) and the variance of the classifier's gradient on a fixed batch
of 100 training images at the end (the trace of its covariance over 32 estimates)
(`train.open_or_train`: finished rows are reused).

    python scripts/experiments/compare_label_estimators.py --config=configs/semi_supervised.py:mnist,100 \\
        --workdir=runs/label_estimators --seeds=0 --epochs=10 \\
        --config.data.source=idx --config.data.idx_dir=../shared/data/mnist

Writes WORKDIR/label_estimators.md.
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

from absl import app, flags

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import config_flag, mean_sd, write_table  # noqa: E402
from tfvae import data  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation
from tfvae.inference import label_estimators

config_flag("The semi-supervised config.")
flags.DEFINE_string("workdir", "runs/label_estimators", "Parent of the runs.")
flags.DEFINE_list("estimators", label_estimators.LABEL_ESTIMATORS.names(), "Estimators.")
flags.DEFINE_list("seeds", ["0"], "Seeds (each also draws its own labelled images).")
flags.DEFINE_integer("epochs", 10, "Epochs of every run.")
flags.DEFINE_integer("repeats", 32, "Gradient estimates for the variance.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def gradient_variance(model, images, estimator, repeats):
    """Trace of the covariance of the classifier's gradient of the unlabelled loss."""
    variables = model.classifier.trainable_variables

    @tf.function
    def one(seed):
        with tf.GradientTape() as tape:
            loss = model.label.unlabelled_terms(model, images, seed=seed, estimator=estimator).loss
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, variables)], 0)
    grads = np.stack([one(tf.constant([i, 5])).numpy() for i in range(repeats)])
    return float(np.sum(np.var(grads, axis=0)))


def main(argv):
    del argv
    rows = {}
    for name in FLAGS.estimators:
        for seed in map(int, FLAGS.seeds):
            config = FLAGS.config.copy_and_resolve_references()
            config.seed, config.model.label_estimator = seed, name
            config.train.epochs, config.train.early_stopping_patience = FLAGS.epochs, 0
            config.eval.plots = False
            state = train.open_or_train(config, os.path.join(FLAGS.workdir, f"{name}_seed{seed}"),
                                        verbose=0)
            t = state.results["test"]
            images = data.first_images(state.splits, 100)
            row = (100 * evaluation.value(t["classification_error"]), evaluation.value(t["elbo"]),
                   gradient_variance(state.model, tf.constant(images), name, FLAGS.repeats),
                   state.results["train_images_per_s"])
            rows.setdefault(name, []).append(row)
            print(f"{name} seed {seed}: error {row[0]:.2f}%, U {row[1]:.2f}, gradient variance "
                  f"{row[2]:.3g}, {row[3]:.0f} images/s", flush=True)
    lines = [f"{FLAGS.epochs} epochs each; mean +- standard deviation over seeds.", "",
             "| y for unlabelled images | seeds | test error (%) | test U(x) (y enumerated) | "
             "classifier gradient variance | train images/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, values in rows.items():
        mean, sd = mean_sd(values)
        lines.append(f"| {name} | {len(values)} | {mean[0]:.2f} +- {sd[0]:.2f} | "
                     f"{mean[1]:.2f} +- {sd[1]:.2f} | {mean[2]:.3g} | {mean[3]:.0f} |")
    write_table(FLAGS.workdir, "label_estimators.md", lines)


if __name__ == "__main__":
    app.run(main)
