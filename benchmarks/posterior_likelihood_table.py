"""Posterior x likelihood at one fixed budget: ELBO, log p(x), their gap, bits/dim, images/s.

    python benchmarks/posterior_likelihood_table.py --workdir=runs/post_lik [--epochs=10]

Rows: dynamically binarised MNIST (Bernoulli) and grey-level FashionMNIST (the 3,615-image
sample in ../shared, discretised logistic), each with the mean-field Gaussian and the IAF
posterior; MLP 300-300, latent 20, batch 100, Adam 1e-3; test log p(x) with k = 500 on 1,000
images. Each row is a tfvae-train workdir (a finished one is reused).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
from absl import app, flags  # noqa: E402

from tfvae import config as config_lib, train  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
flags.DEFINE_string("workdir", "runs/posterior_likelihood", "Parent of the row workdirs.")
flags.DEFINE_integer("epochs", 10, "Training epochs of every row.")
flags.DEFINE_integer("mnist_train_size", 20000, "MNIST training images used.")
flags.DEFINE_integer("seed", 0, "config.seed of every row.")
flags.DEFINE_list("data", ["mnist", "fashion_mnist_grey"], "Which data rows.")
FLAGS = flags.FLAGS


def row_config(data, posterior):
    c = config_lib.get_config()
    c.seed = FLAGS.seed
    c.model.hidden, c.model.latent_dim, c.model.posterior = (300, 300), 20, posterior
    c.data.batch_size, c.train.learning_rate, c.train.epochs = 100, 1e-3, FLAGS.epochs
    c.eval.iw_samples, c.eval.iw_examples, c.eval.plots = 500, 1000, False
    if data == "mnist":
        c.data.name, c.data.pixels = "mnist", "dynamic"
        c.data.data_dir, c.data.download = os.path.join(SHARED, "tfds"), False
        c.data.train_size = FLAGS.mnist_train_size
    else:
        c.data.source = "idx"
        c.data.idx_dir = os.path.join(SHARED, "data", "fashion_mnist_sample")
        c.data.test_size, c.data.validation_size, c.data.pixels = 500, 500, "continuous"
        c.model.likelihood = "discretized_logistic"
    return c


def main(argv):
    del argv
    lines = ["| data | likelihood | posterior | test ELBO | log p(x) >= (k=500) | gap | bits/dim "
             "| train images/s |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for data in FLAGS.data:
        for posterior in ("gaussian", "iaf"):
            config = row_config(data, posterior)
            workdir = os.path.join(FLAGS.workdir, f"{data}_{posterior}_seed{FLAGS.seed}")
            if os.path.exists(os.path.join(workdir, train.RESULTS)):
                r = train.load_run(workdir).results
            else:
                r = train.train_and_evaluate(config, workdir, verbose=0)
            t = r["test"]
            lines.append(f"| {data} | {config.model.likelihood} | {posterior} | {t['elbo']:.2f} | "
                         f"{t['log_likelihood']:.2f} | {t['log_likelihood'] - t['elbo']:.2f} | "
                         f"{t['bits_per_dim']:.4f} | {r['train_images_per_s']:.0f} |")
            print(lines[-1], flush=True)
    with open(os.path.join(FLAGS.workdir, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
