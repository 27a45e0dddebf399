"""Training cost per step of the two-level HVAE against the one-level VAE, at the literature's
setting (`configs/literature.py`: dynamically binarised MNIST, gated 300-300 networks, latent
40 per layer, batch 100, AdamNormGrad), each model trained through `fit` as `tfvae-train` does
(its `train.jit_compile='auto'` and steps_per_execution). Run on an otherwise idle machine:

    python benchmarks/hierarchy_step_cost.py [--models=standard,hvae_standard,vamp,hvae_vamp]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfvae.cli import quiet_tensorflow  # noqa: E402
from step_timing import median_step_seconds  # noqa: E402

quiet_tensorflow()
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.training import optimizers  # noqa: E402
from tfvae.models import builder
from tfvae.training import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_list("models", ["standard", "hvae_standard", "vamp", "hvae_vamp"],
                  "configs/literature.py:mnist,MODEL models to time.")
flags.DEFINE_integer("steps", 320, "Timed steps per repeat (after a warm-up epoch).")
flags.DEFINE_integer("repeats", 3, "Repeats; the median is reported.")
flags.DEFINE_string("data_dir", os.path.join(ROOT, "..", "shared", "tfds"),
                    "TFDS folder holding mnist/.")
FLAGS = flags.FLAGS


def step_time(name, splits):
    config = config_lib.from_file(os.path.join(ROOT, "configs", "literature.py"),
                                  f"mnist,{name}")
    keras.utils.set_random_seed(0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        train_images=data.first_images(splits, 500))
    default, groups = optimizers.for_training(config.train)
    jit = distribute.jit_compile(None, config.train.jit_compile, config.model.network.name)
    vae.compile(default, group_optimizers=groups, steps_per_execution=32, jit_compile=jit)
    seconds = median_step_seconds(vae, splits.train.repeat(), FLAGS.steps, FLAGS.repeats)
    return seconds, sum(int(np.prod(v.shape)) for v in vae.trainable_variables)


def main(argv):
    del argv
    config = config_lib.from_file(os.path.join(ROOT, "configs", "literature.py"), "mnist,standard")
    config.data.data_dir, config.data.download = FLAGS.data_dir, False
    splits = data.load(config.data, seed=0)
    results = {}
    for name in FLAGS.models:
        results[name], params = step_time(name, splits)
        one_level = results.get(name.replace("hvae_", ""))
        ratio = f"{results[name] / one_level:.2f}x one level" if one_level and name != \
            name.replace("hvae_", "") else ""
        print(f"{name:14s} {1000 * results[name]:7.2f} ms/step  {params:9,d} parameters  {ratio}",
              flush=True)


if __name__ == "__main__":
    app.run(main)
