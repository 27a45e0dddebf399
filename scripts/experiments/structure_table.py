"""The notebook's question as a table: on MNIST with a 10-component mixture prior, how far do
its components line up with the classes (cluster accuracy, NMI) with no pressure, with each
penalty, with c a node of its own (GMVAE), with a geometric decoder, and with 1% / 10% of the
labels (the annotated prior, ``model.label='component'``), at one budget, and at what
log-likelihood. Each row is a `configs/structure.py:mnist,OBJECTIVE` run (resumable: run the
script again to continue), the seeds apart:

    python scripts/experiments/structure_table.py --workdir=runs/structure --epochs=20 \\
      --seeds=0,1,2 --data_dir=../shared/tfds

writes WORKDIR/structure_table.md (mean +- sd over the seeds that finished).
"""
import os

import common  # noqa: F401  (first: tfvae importable, TensorFlow quiet)
from common import finished_rows, mean_sd, run_rows
from absl import app, flags

flags.DEFINE_string("workdir", None, "Where the runs and the table go.")
flags.DEFINE_list("rows", ["elbo", "beta_vae", "beta_tcvae", "factor_vae", "dip_vae_i",
                           "dip_vae_ii", "info_vae", "annealed_vae", "gmvae", "pose",
                           "labels_1pc", "labels_10pc"], "Rows of the table.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_integer("epochs", 20, "The budget: epochs of 50,000 images for every row.")
flags.DEFINE_integer("iw_samples", 1000, "k of the test log-likelihood.")
flags.DEFINE_integer("iw_examples", 2000, "Test images it is measured on.")
flags.DEFINE_string("data_dir", "", "TFDS folder holding mnist/.")
flags.DEFINE_bool("report_only", False, "Only write the table from the finished runs.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
# 1% and 10% of MNIST's 50,000 training images, per class
LABELLED = {"labels_1pc": 50, "labels_10pc": 500}


def config_of(row: str, seed: int):
    from tfvae.config import from_file
    objective = "elbo" if row in LABELLED else row
    config = from_file(os.path.join(HERE, "..", "..", "configs", "structure.py"),
                       f"mnist,{objective}")
    config.seed = seed
    config.data.data_dir, config.data.download = FLAGS.data_dir, not FLAGS.data_dir
    config.data.validation_size = 10000
    config.train.epochs = FLAGS.epochs
    config.eval.iw_samples, config.eval.iw_examples = FLAGS.iw_samples, FLAGS.iw_examples
    if row in LABELLED:  # the mixture's components tied to the classes by those labels
        config.model.label = "component"
        config.data.labels = str(LABELLED[row])  # data.labels is a string field: N per class
    if row == "pose":  # the pose decoder on 28 x 28: the cnn encoder's default channels
        config.model.network.conv_channels = (32, 64)
    return config


def table(rows, seeds):
    lines = [f"MNIST (dynamic), 10-component mixture prior, {FLAGS.epochs} epochs, test split; "
             f"log p(x) by IS with k = {FLAGS.iw_samples} on {FLAGS.iw_examples} test images; "
             "mean +- sd over the seeds", "",
             "| row | seeds | cluster accuracy | NMI | clusters used | test ELBO | test log p(x) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        found = finished_rows(FLAGS.workdir, row, seeds, lambda r: [
            r.get("cluster_accuracy", float("nan")), r.get("nmi", float("nan")),
            r.get("clusters_used", float("nan")), r["test"]["elbo"]["mean"],
            r["test"]["log_likelihood"]["mean"]])
        if not found:
            lines.append(f"| {row} | 0 | | | | | |")
            continue
        mean, sd = mean_sd(found)
        cells = [f"{m:.3f} +- {s:.3f}" for m, s in zip(mean[:2], sd[:2])]
        cells += [f"{mean[2]:.1f}"] + [f"{m:.2f} +- {s:.2f}" for m, s in zip(mean[3:], sd[3:])]
        lines.append(f"| {row} | {len(found)} | " + " | ".join(cells) + " |")
    return lines


def main(argv):
    del argv
    run_rows(FLAGS.workdir, "structure_table.md", FLAGS.rows, [int(s) for s in FLAGS.seeds],
             config_of, table, FLAGS.report_only)


if __name__ == "__main__":
    app.run(main)
