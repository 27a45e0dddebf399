#!/usr/bin/env python3
"""Peak memory and speed of training on a TFDS set as it grows 10x: streamed (``data.in_memory_mb``
below its size: TFDS reads its files as it goes) against read into memory (the default where
the decoded images fit).

    # TFDS sets mnist_x1 and mnist_x10: MNIST's 60,000 training images, tiled 1 and 10 times
    # (each copy shifted by one more pixel, so no two copies are equal), its 10,000 test images
    python benchmarks/tfds_streaming.py --make=/tmp/tfds_big --copies=1,10
    python benchmarks/tfds_streaming.py --measure=/tmp/tfds_big --copies=1,10

Each measurement runs in its own process: data set, mode, seconds until the first step (loading
or opening the set), training images/s over ``--steps`` steps of the MLP (batch 128), and the
process's peak resident memory (``ru_maxrss``).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(HERE, "..", "..", "shared"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make(folder, copies):
    """``mnist_x{copies}``: TFDS mnist's train split tiled ``copies`` times, copy i rolled i pixels
    to the right; its test split as is."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    mnist = tfds.builder("mnist", data_dir=os.path.join(SHARED, "tfds"))
    (images, labels), (test_images, test_labels) = tfds.as_numpy(mnist.as_dataset(
        split=["train", "test"], batch_size=-1, as_supervised=True))
    tiled = tf.data.Dataset.range(copies).flat_map(
        lambda i: tf.data.Dataset.from_tensor_slices((images, labels)).map(
            lambda x, y: {"image": tf.roll(x, tf.cast(i, tf.int32), axis=1), "label": y}))
    test = tf.data.Dataset.range(1).flat_map(lambda _: tf.data.Dataset.from_tensor_slices(
        {"image": test_images, "label": test_labels}))
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)),
        "label": tfds.features.ClassLabel(num_classes=10)})
    tfds.dataset_builders.store_as_tfds_dataset(
        name=f"mnist_x{copies}", version="1.0.0", features=features, data_dir=folder,
        split_datasets={"train": tiled, "test": test},
        description=f"MNIST's training images tiled {copies} times (benchmarks/tfds_streaming.py)")


def one(folder, copies, mode, steps):
    import tf_keras as keras

    from tfvae import config as config_lib, data
    from tfvae.models import builder
    from tfvae.training import optimizers
    start = time.perf_counter()
    c = config_lib.get_config()
    c.data.source, c.data.name, c.data.data_dir = "tfds", f"mnist_x{copies}", folder
    c.data.download, c.data.pixels, c.data.batch_size = False, "dynamic", 128
    c.data.validation_size = 10000
    c.data.in_memory_mb = 0 if mode == "stream" else 100_000
    c.model.latent_dims, c.model.network.hidden = (40,), (512, 512)
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0, say=lambda *_: None)
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    vae.compile(optimizers.make("adam", 1e-3), steps_per_execution=32, jit_compile=True)
    ready = time.perf_counter() - start
    vae.fit(splits.train.repeat(), steps_per_epoch=64, epochs=1, verbose=0)  # trace, compile
    t0 = time.perf_counter()
    vae.fit(splits.train.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    rate = steps * 128 / (time.perf_counter() - t0)
    print("RESULT " + json.dumps({
        "set": f"mnist_x{copies}", "train_images": splits.num_train, "mode": mode,
        "open_s": round(ready, 1), "train_img_per_s": round(rate),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}),
        flush=True)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--make", default="", help="folder to write the TFDS sets into")
    a.add_argument("--measure", default="", help="folder holding them")
    a.add_argument("--copies", default="1,10")
    a.add_argument("--modes", default="stream,memory")
    a.add_argument("--steps", type=int, default=1000)
    a.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.one:
        copies, mode = args.one.split(":")
        return one(args.measure, int(copies), mode, args.steps)
    for copies in map(int, args.copies.split(",")):
        if args.make:
            start = time.perf_counter()
            make(args.make, copies)
            print(f"made mnist_x{copies} in {time.perf_counter() - start:.0f} s", flush=True)
        if args.measure:
            for mode in args.modes.split(","):
                out = subprocess.run([sys.executable, __file__, f"--measure={args.measure}",
                                      f"--one={copies}:{mode}", f"--steps={args.steps}"],
                                     capture_output=True, text=True)
                line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
                print(line[0][7:] if line else f"mnist_x{copies} {mode}: failed\n"
                      f"{out.stderr[-1500:]}", flush=True)


if __name__ == "__main__":
    main()
