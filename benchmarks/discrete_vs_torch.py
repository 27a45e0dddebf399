#!/usr/bin/env python3
"""tfvae's side of benchmarks/torch_discrete_twin.py: the linear 200-bit VAE
(configs/discrete.py:linear) with DisARM or VIMCO (k = 2), Adam 1e-4, batch 50, dynamically
binarised MNIST from the IDX files (all 60,000 training images, no validation hold-out), the
test ELBO on the first 1,000 test images. ``--estimator=reinforce,reparameterized`` instead
compares a score-function step on the bits with a reparameterised step on a Gaussian code of
the same width through the same networks. Prints one line per estimator in the twin's format.

  python benchmarks/discrete_vs_torch.py --data ../shared/data/mnist --estimator disarm
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tf_keras as keras  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.models import builder  # noqa: E402
from tfvae.results import evaluation  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args, estimator):
    c = config_lib.get_config()
    c.data.source, c.data.idx_dir, c.data.pixels = "idx", args.data, "dynamic"
    c.data.validation_size, c.data.batch_size = 0, args.batch
    c.model.latent_dims, c.model.network.hidden = (200,), ()
    if estimator != "reparameterized":
        c.model.posterior.name = c.model.prior.name = "bernoulli"
    c.model.num_samples = 2 if estimator in ("vimco", "rloo") else 1
    c.estimator.name = estimator
    keras.utils.set_random_seed(args.seed)
    splits = data.load(c.data, seed=args.seed)
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(args.lr), steps_per_execution=args.steps_per_execution,
                jit_compile=bool(args.jit_compile))
    t0 = time.perf_counter()
    vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch, epochs=args.epochs,
            verbose=0)
    total = time.perf_counter() - t0
    test = splits.test.unbatch().take(1000).batch(500)
    elbo = evaluation.evaluate(vae, test)["elbo"]["mean"]
    print(f"tfvae_discrete estimator={estimator} epochs={args.epochs} batch={args.batch} "
          f"train_img_per_s={splits.steps_per_epoch * args.batch * args.epochs / total:.0f} "
          f"test_elbo={elbo:.2f} (jit={bool(args.jit_compile)})", flush=True)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
    a.add_argument("--estimator", default="disarm", help="comma-separated estimator names")
    a.add_argument("--epochs", type=int, default=1)
    a.add_argument("--batch", type=int, default=50)
    a.add_argument("--lr", type=float, default=1e-4)
    a.add_argument("--steps_per_execution", type=int, default=50)
    a.add_argument("--jit_compile", type=int, default=1)
    a.add_argument("--seed", type=int, default=0)
    args = a.parse_args()
    for estimator in args.estimator.split(","):
        run(args, estimator.strip())


if __name__ == "__main__":
    main()
