"""Importance-sampled evaluation speed at the literature's protocol (k = 5,000, 300-300 gated
network, latent 40, MNIST test images): images/s, and the projected wall time on all 10,000.

    python benchmarks/iw_eval_speed.py [--k=5000] [--examples=300] [--prior=standard]

``--network=reference`` times the PyTorch reference's network instead (MLP 784-512-512, ReLU,
latent 40; compare with ``benchmarks/iw_torch_ref.py`` one right after the other, on an idle
machine, with the same ``--batch``: the reference evaluates 20 images per call).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import tf_keras as keras  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.results import evaluation  # noqa: E402
from tfvae.models import builder

flags.DEFINE_list("k", ["5000", "1000"], "Numbers of importance samples to time.")
flags.DEFINE_integer("examples", 300, "Test images timed (after a warm-up batch).")
flags.DEFINE_string("prior", "standard", "standard, vamp or mog (configs/literature.py).")
flags.DEFINE_enum("network", "literature", ["literature", "reference"],
                  "literature: gated 300-300 (configs/literature.py); reference: the PyTorch "
                  "reference's MLP 512-512 with ReLU.")
flags.DEFINE_integer("batch", 100, "Test images per call.")
flags.DEFINE_string("data_dir", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                             "tfds"), "TFDS folder holding mnist/.")
flags.DEFINE_string("precision", "float32", "train.precision of the networks (float32, "
                    "mixed_bfloat16, auto, ...).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "literature.py")
    config = config_lib.from_file(path, f"mnist,{FLAGS.prior}")
    config.data.data_dir, config.data.download = FLAGS.data_dir, False
    config.data.eval_batch_size = FLAGS.batch
    config.train.precision = FLAGS.precision
    if FLAGS.network == "reference":
        config.model.network.name, config.model.network.hidden = "mlp", (512, 512)
        config.model.posterior.scale = "softplus"
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        train_images=data.first_images(splits, 64))
    for k in map(int, FLAGS.k):
        warm = splits.test.unbatch().take(FLAGS.batch).batch(FLAGS.batch)
        evaluation.log_likelihood(vae, warm, k, batch_size=FLAGS.batch, progress=None)  # trace
        start = time.perf_counter()
        images = splits.test.unbatch().take(FLAGS.examples).batch(FLAGS.batch)
        out = evaluation.log_likelihood(vae, images, k, FLAGS.batch, progress=None)
        seconds = time.perf_counter() - start
        rate = out["iw_examples"] / seconds
        print(f"{FLAGS.network} network, {FLAGS.batch} images per call, k={k}: {rate:.1f} "
              f"images/s; all {splits.num_test} test images: "
              f"{splits.num_test / rate / 60:.1f} min", flush=True)


if __name__ == "__main__":
    app.run(main)
