"""Training images/s of M2 (configs/semi_supervised.py:mnist,100) with the label joined to the
encoder's features (``model.label_input='features'``, the config's) against K constant image
channels (``'channels'``, the default), y enumerated for the unlabelled images. IDX MNIST, the
first 12,000 training images; the median of the epochs after the first. Idle machine:

    python benchmarks/m2_speed.py [--label_inputs=channels,features] [--epochs=4]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfvae import config, data  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.training import callbacks

SHARED = os.environ.get("TFVAE_SHARED", os.path.join(HERE, "..", "..", "shared"))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--label_inputs", default="channels,features")
    a.add_argument("--epochs", type=int, default=4)
    a.add_argument("--steps", type=int, default=40, help="steps per epoch (batch 100)")
    args = a.parse_args()
    for label_input in args.label_inputs.split(","):
        c = config.from_file(os.path.join(HERE, "..", "configs", "semi_supervised.py"),
                             "mnist,100")
        c.data.source, c.data.idx_dir = "idx", os.path.join(SHARED, "data", "mnist")
        c.data.train_size, c.data.validation_size = 12000, 1000
        c.model.label_input = label_input
        keras.utils.set_random_seed(0)
        splits = data.load(c.data, seed=0, with_labels=True)
        model = train.build_model(c, splits)
        stream = tf.data.Dataset.zip((splits.train.map(lambda x, y: x).repeat(),
                                      splits.labelled))
        rate = callbacks.Throughput(c.data.batch_size, args.steps)
        model.fit(stream, steps_per_epoch=args.steps, epochs=args.epochs, verbose=0,
                  callbacks=[rate])
        print(f"label_input={label_input}: {model.count_params():,} weights, "
              f"{np.median(rate.rates[1:]):.0f} training images/s", flush=True)


if __name__ == "__main__":
    main()
