"""Does a second latent layer help? Trains one config with each of several ``model.latent_dims``
over seeds, at equal epochs, and compares test ELBO and importance-sampled log p(x) with the
seed-to-seed spread (`train.open_or_train`: finished rows are reused).

    python scripts/experiments/compare_levels.py --config=configs/mnist_dynamic.py \\
        --workdir=runs/levels --levels="40;40,40" --seeds=0,1,2 --epochs=20 \\
        --config.data.data_dir=../shared/tfds --config.data.download=False

Writes WORKDIR/levels.md: per latent layout, mean +- standard deviation over seeds, and each
layout's paired difference to the first one (same seed, same data order).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

from absl import app, flags

import numpy as np  # noqa: E402

from common import config_flag, mean_sd, write_table  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation

config_flag("The config to train.")
flags.DEFINE_string("workdir", "runs/levels", "Parent of the runs.")
flags.DEFINE_string("levels", "40;40,40", "Latent layouts to compare, ';'-separated, each "
                    "bottom first (e.g. '40;40,40').")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("epochs", 20, "Epochs of every run.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    layouts = [tuple(int(d) for d in part.split(",")) for part in FLAGS.levels.split(";")]
    rows = {}
    for dims in layouts:
        for seed in map(int, FLAGS.seeds):
            config = FLAGS.config.copy_and_resolve_references()
            config.seed, config.model.latent_dims, config.train.epochs = seed, dims, FLAGS.epochs
            config.train.early_stopping_patience, config.eval.plots = 0, False
            name = "_".join(map(str, dims))
            workdir = os.path.join(FLAGS.workdir, f"z{name}_seed{seed}")
            results = train.open_or_train(config, workdir, verbose=0).results
            t = results["test"]
            row = (evaluation.value(t["elbo"]), evaluation.value(t["log_likelihood"]),
                   results["train_images_per_s"])
            rows.setdefault(dims, []).append(row)
            print(f"latent_dims={dims} seed {seed}: test ELBO {row[0]:.2f}, log p(x) "
                  f"{row[1]:.2f}, {row[2]:.0f} images/s", flush=True)
    base = np.asarray(rows[layouts[0]])
    lines = [f"{FLAGS.epochs} epochs each; differences are paired by seed against "
             f"latent_dims={layouts[0]}.", "",
             "| latent_dims | seeds | test ELBO | test log p(x) | log p(x) - first (paired) | "
             "train images/s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for dims, values in rows.items():
        mean, sd = mean_sd(values)
        diff = np.asarray(values)[:, 1] - base[:len(values), 1]
        dmean, dsd = mean_sd(diff)
        lines.append(f"| {dims} | {len(values)} | {mean[0]:.2f} +- {sd[0]:.2f} | "
                     f"{mean[1]:.2f} +- {sd[1]:.2f} | {dmean:+.2f} +- {dsd:.2f} | "
                     f"{mean[2]:.0f} |")
    write_table(FLAGS.workdir, "levels.md", lines)


if __name__ == "__main__":
    app.run(main)
