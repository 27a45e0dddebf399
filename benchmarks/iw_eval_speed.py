"""Importance-sampled evaluation speed at the literature's protocol (k = 5,000, 300-300 gated
network, latent 40, MNIST test images): images/s, and the projected wall time on all 10,000.

    python benchmarks/iw_eval_speed.py [--k=5000] [--examples=300] [--prior=standard]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import importlib.util  # noqa: E402

import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae import data, evaluation, model as model_lib  # noqa: E402

flags.DEFINE_list("k", ["5000", "1000"], "Numbers of importance samples to time.")
flags.DEFINE_integer("examples", 300, "Test images timed (after a warm-up batch).")
flags.DEFINE_string("prior", "standard", "standard, vamp or mog (configs/literature.py).")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                             "tfds"), "TFDS folder holding mnist/.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "literature.py")
    spec = importlib.util.spec_from_file_location("literature", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(f"mnist,{FLAGS.prior}")
    config.data.data_dir, config.data.download = FLAGS.data_dir, False
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0)
    vae = model_lib.build(config, splits.image_shape, splits.steps_per_epoch,
                          train_images=next(iter(splits.train))[:64])
    for k in map(int, FLAGS.k):
        warm = splits.test.unbatch().take(100).batch(100)
        evaluation.log_likelihood(vae, warm, k, progress=None)  # trace and compile
        start = time.perf_counter()
        out = evaluation.log_likelihood(vae, splits.test, k, FLAGS.examples, progress=None)
        seconds = time.perf_counter() - start
        rate = out["iw_examples"] / seconds
        print(f"k={k}: {rate:.1f} images/s; all {splits.num_test} test images: "
              f"{splits.num_test / rate / 60:.1f} min", flush=True)


if __name__ == "__main__":
    app.run(main)
