"""Posterior x likelihood at one fixed budget: ELBO, log p(x), their gap, bits/dim, images/s.

    python scripts/experiments/posterior_likelihood_table.py --workdir=runs/post_lik [--epochs=10]

Rows: dynamically binarised MNIST (Bernoulli) and grey-level FashionMNIST (the 3,615-image
sample in ../shared, discretised logistic), each with the mean-field Gaussian and the IAF
posterior; MLP 300-300, latent 20, batch 100, Adam 1e-3; test log p(x) with k = 500 on 1,000
images. Each row is a tfvae-train workdir (a finished one is reused).

    python scripts/experiments/posterior_likelihood_table.py --fixed_decoder --seed=S

isolates the posterior instead (the comparison tests/test_flows.py asserts): one decoder trained
5 epochs with a Gaussian posterior on 20,000 MNIST images, then frozen, and a fresh encoder per
posterior fitted for ``--epochs`` on it. Same p(x|z), so the ELBO and its gap to log p(x)
differ only through q(z|x).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os
import time

from absl import app, flags  # noqa: E402

from common import write_table  # noqa: E402
from tfvae import config as config_lib  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
flags.DEFINE_string("workdir", "runs/posterior_likelihood", "Parent of the row workdirs.")
flags.DEFINE_integer("epochs", 10, "Training epochs of every row.")
flags.DEFINE_integer("mnist_train_size", 20000, "MNIST training images used.")
flags.DEFINE_integer("seed", 0, "config.seed of every row.")
flags.DEFINE_list("data", ["mnist", "fashion_mnist_grey"], "Which data rows.")
flags.DEFINE_bool("fixed_decoder", False, "Fit encoders to one frozen decoder (MNIST only).")
flags.DEFINE_integer("decoder_epochs", 5, "With --fixed_decoder: epochs training the decoder.")
FLAGS = flags.FLAGS


def row_config(data, posterior):
    c = config_lib.get_config()
    c.seed = FLAGS.seed
    c.model.network.hidden, c.model.latent_dims, c.model.posterior.name = (300, 300), (20,), posterior
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
        c.model.likelihood.name = "discretized_logistic"
    return c


def fixed_decoder_rows():
    """Encoders fitted to one frozen decoder: ELBO (mean of 5 passes), log p(x), gap."""
    import numpy as np
    import tf_keras as keras
    from tfvae import data
    from tfvae.models import builder
    from tfvae.results import evaluation
    config = row_config("mnist", "gaussian")
    keras.utils.set_random_seed(FLAGS.seed)
    splits = data.load(config.data, seed=FLAGS.seed)
    base = builder.build(config, splits.image_shape, splits.steps_per_epoch)
    base.compile(keras.optimizers.Adam(config.train.learning_rate), steps_per_execution=50)
    base.fit(splits.train, epochs=FLAGS.decoder_epochs, verbose=0)
    test = splits.test.unbatch().take(config.eval.iw_examples).batch(100)
    lines = []
    for posterior in ("gaussian", "iaf"):
        keras.utils.set_random_seed(FLAGS.seed + 1)
        vae = builder.build(row_config("mnist", posterior), splits.image_shape,
                            splits.steps_per_epoch)
        vae.decoder.set_weights(base.decoder.get_weights())
        vae.decoder.trainable = False
        vae.compile(keras.optimizers.Adam(config.train.learning_rate), steps_per_execution=50)
        start = time.perf_counter()
        vae.fit(splits.train, epochs=FLAGS.epochs, verbose=0)
        rate = FLAGS.epochs * splits.num_train / (time.perf_counter() - start)
        elbo = float(np.mean([evaluation.evaluate(vae, test, seed=s)["elbo"]["mean"]
                              for s in range(5)]))
        ll = evaluation.log_likelihood(vae, test, config.eval.iw_samples,
                                       progress=None)["log_likelihood"]["mean"]
        lines.append(f"| mnist, fixed decoder | bernoulli | {posterior} | {elbo:.2f} | {ll:.2f} "
                     f"| {ll - elbo:.2f} | {-ll / (784 * np.log(2.0)):.4f} | {rate:.0f} |")
        print(lines[-1], flush=True)
    return lines


def main(argv):
    del argv
    if FLAGS.fixed_decoder:
        write_table(FLAGS.workdir, f"fixed_decoder_seed{FLAGS.seed}.md", fixed_decoder_rows())
        return
    lines = ["| data | likelihood | posterior | test ELBO | log p(x) >= (k=500) | gap | bits/dim "
             "| train images/s |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for data in FLAGS.data:
        for posterior in ("gaussian", "iaf"):
            config = row_config(data, posterior)
            workdir = os.path.join(FLAGS.workdir, f"{data}_{posterior}_seed{FLAGS.seed}")
            r = train.open_or_train(config, workdir, verbose=0).results
            t = {k: evaluation.value(r["test"][k])
                 for k in ("elbo", "log_likelihood", "bits_per_dim")}
            lines.append(f"| {data} | {config.model.likelihood.name} | {posterior} | {t['elbo']:.2f} | "
                         f"{t['log_likelihood']:.2f} | {t['log_likelihood'] - t['elbo']:.2f} | "
                         f"{t['bits_per_dim']:.4f} | {r['train_images_per_s']:.0f} |")
            print(lines[-1], flush=True)
    write_table(FLAGS.workdir, "table.md", lines)


if __name__ == "__main__":
    app.run(main)
