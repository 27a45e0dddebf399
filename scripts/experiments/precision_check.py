"""Does mixed precision learn the same? Trains one config in float32 and in a mixed precision
over several seeds, at equal epochs, and compares test ELBO and log p(x) with the seed-to-seed
spread (`train.open_or_train`: finished rows are reused).

    python scripts/experiments/precision_check.py --config=configs/fashion_mnist_conv64.py \\
        --workdir=runs/precision --seeds=0,1,2 --epochs=10 \\
        --config.data.source=idx --config.data.idx_dir=../shared/data/fashion_mnist_sample \\
        --config.data.test_size=500

Writes WORKDIR/precision.md: per precision, mean +- standard deviation over seeds.
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

from absl import app, flags

from common import config_flag, mean_sd, write_table  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation

config_flag("The config to train.")
flags.DEFINE_string("workdir", "runs/precision", "Parent of the runs.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precisions to compare.")
flags.DEFINE_integer("epochs", 10, "Epochs of every run.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    rows = {}
    for name in FLAGS.precisions:
        for seed in map(int, FLAGS.seeds):
            config = FLAGS.config.copy_and_resolve_references()
            config.seed, config.train.precision, config.train.epochs = seed, name, FLAGS.epochs
            config.train.early_stopping_patience, config.eval.plots = 0, False
            workdir = os.path.join(FLAGS.workdir, f"{name}_seed{seed}")
            results = train.open_or_train(config, workdir, verbose=0).results
            t = results["test"]
            row = (evaluation.value(t["elbo"]), evaluation.value(t["log_likelihood"]),
                   results["train_images_per_s"])
            rows.setdefault(name, []).append(row)
            print(f"{name} seed {seed}: test ELBO {row[0]:.2f}, log p(x) {row[1]:.2f}, "
                  f"{row[2]:.0f} images/s", flush=True)
    lines = ["| precision | seeds | test ELBO | test log p(x) | train images/s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, values in rows.items():
        mean, sd = mean_sd(values)
        lines.append(f"| {name} | {len(values)} | {mean[0]:.2f} +- {sd[0]:.2f} | "
                     f"{mean[1]:.2f} +- {sd[1]:.2f} | {mean[2]:.0f} |")
    write_table(FLAGS.workdir, "precision.md", lines)


if __name__ == "__main__":
    app.run(main)
