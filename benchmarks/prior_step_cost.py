"""Training cost per step of each prior relative to the standard prior, at the literature's
setting (dynamically binarised MNIST, latent 40, batch 100, K = 500 components / pseudo-inputs,
20 x 20 GTM grids, a 6-layer flow), each model trained through `fit` exactly as `tfvae-train`
does (XLA, steps_per_execution). Run on an otherwise idle machine:

    python benchmarks/prior_step_cost.py [--network=mlp] [--priors=standard_normal,mog,...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfvae.cli import quiet_tensorflow  # noqa: E402
from step_timing import median_step_seconds  # noqa: E402

quiet_tensorflow()
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.distributions import priors  # noqa: E402
from tfvae.models import builder
from tfvae.training import optimizers

flags.DEFINE_string("network", "mlp", "mlp or gated_mlp (300-300 either way).")
flags.DEFINE_list("priors", list(priors.RECOMMENDED), "Priors to time.")
flags.DEFINE_integer("steps", 320, "Timed steps per repeat (after a warm-up epoch).")
flags.DEFINE_integer("repeats", 3, "Repeats; the median is reported.")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                             "tfds"), "TFDS folder holding mnist/.")
FLAGS = flags.FLAGS


def step_time(prior, splits, arrays):
    config = config_lib.get_config()
    config.data.name, config.data.pixels, config.data.batch_size = "mnist", "dynamic", 100
    config.model.latent_dims, config.model.network.hidden = (40,), (300, 300)
    config.model.network.name, config.model.prior.name = FLAGS.network, prior
    config.model.prior.update(priors.RECOMMENDED[prior])
    config.train.learning_rate = 5e-4
    keras.utils.set_random_seed(0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        train_images=data.first_images(splits, 64))
    default, groups = optimizers.for_training(config.train)
    vae.compile(default, group_optimizers=groups, steps_per_execution=32, jit_compile=True)
    return median_step_seconds(vae, splits.train.repeat(), FLAGS.steps, FLAGS.repeats, 64)


def main(argv):
    del argv
    config = config_lib.get_config()
    config.data.name, config.data.pixels, config.data.batch_size = "mnist", "dynamic", 100
    config.data.data_dir, config.data.download = FLAGS.data_dir, False
    splits = data.load(config.data, seed=0)
    results = {}
    for prior in FLAGS.priors:
        results[prior] = step_time(prior, splits, None)
        base = results.get("standard_normal")
        ratio = f"{results[prior] / base:.2f}x" if base else ""
        print(f"{prior:16s} {1000 * results[prior]:7.2f} ms/step  {ratio}", flush=True)


if __name__ == "__main__":
    app.run(main)
