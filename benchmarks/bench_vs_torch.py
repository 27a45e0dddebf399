#!/usr/bin/env python3
"""tfvae's side of the comparison with ``../shared/bench/ref_torch_vae.py``.

Same design and settings as the reference: dynamically binarised MNIST read from the official IDX
files (all 60,000 training images, no validation hold-out), MLP 784-H-H-2L encoder and L-H-H-784
decoder with ReLU, softplus posterior scales, standard normal prior, Bernoulli likelihood, Adam
lr 1e-3, one reparameterised sample; test ELBO and IWAE bound (k = 100) on the first 1,000 test
images binarised once. Prints one line in the reference's format, e.g.

  tfvae epochs=1 batch=128 latent=40 hidden=512 train_img_per_s=... test_elbo=... test_iwae100=...

``scripts/benchmark.py --only=mlp1,mlp3`` runs both, one right after the other, on the same machine.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.results import evaluation  # noqa: E402
from tfvae.models import builder
from tfvae.training import callbacks, distribute, optimizers

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
    a.add_argument("--epochs", type=int, default=1)
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--latent", type=int, default=40)
    a.add_argument("--hidden", type=int, default=512)
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--iwae_k", type=int, default=100)
    a.add_argument("--test_n", type=int, default=1000)
    a.add_argument("--steps_per_execution", type=int, default=32)
    a.add_argument("--jit_compile", default="auto", help="auto (the product's choice), 1 or 0")
    a.add_argument("--precision", default="float32")
    a.add_argument("--seed", type=int, default=0)
    args = a.parse_args()

    c = config_lib.get_config()
    c.data.source, c.data.idx_dir, c.data.pixels = "idx", args.data, "dynamic"
    c.data.validation_size, c.data.batch_size = 0, args.batch
    c.model.latent_dims, c.model.network.hidden = (args.latent,), (args.hidden, args.hidden)
    c.train.learning_rate = args.lr
    c.train.precision = args.precision
    keras.utils.set_random_seed(args.seed)
    splits = data.load(c.data, seed=args.seed)
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    jit = distribute.jit_compile(None, args.jit_compile, "mlp", precision=args.precision)
    vae.compile(optimizers.make("adam", args.lr), steps_per_execution=args.steps_per_execution,
                jit_compile=jit)

    t0 = time.perf_counter()
    throughput = callbacks.Throughput(c.data.batch_size, splits.steps_per_epoch)
    epoch_times = vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch,
                          epochs=args.epochs, verbose=0,
                          callbacks=[throughput]).history["epoch_time_s"]
    total = time.perf_counter() - t0
    images = splits.steps_per_epoch * args.batch
    test = splits.test.unbatch().take(args.test_n).batch(500)
    elbo = evaluation.evaluate(vae, test)["elbo"]["mean"]
    iwae = evaluation.log_likelihood(vae, test, args.iwae_k, batch_size=20)["log_likelihood"]["mean"]
    steady = images / np.median(epoch_times[1:]) if len(epoch_times) > 1 else float("nan")
    print(f"tfvae epochs={args.epochs} batch={args.batch} latent={args.latent} "
          f"hidden={args.hidden} train_img_per_s={images * args.epochs / total:.0f} "
          f"test_elbo={elbo:.2f} test_iwae{args.iwae_k}={iwae:.2f} "
          f"(steady_img_per_s={steady:.0f} first_epoch_s={epoch_times[0]:.1f} "
          f"jit={jit} precision={args.precision})")


if __name__ == "__main__":
    main()
