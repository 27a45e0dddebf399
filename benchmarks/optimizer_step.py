"""Time of one optimiser update of the conv64 network's weights (configs/fashion_mnist_conv64.py:
17M weights in 15 tensors), Keras's Adam against tfvae's (the same arithmetic in TensorFlow's
fused ``ResourceApplyAdam`` kernel), in a `tf.function` as `fit` runs it. Run on an otherwise
idle machine:

    python benchmarks/optimizer_step.py [--repeats=30]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfvae.training import optimizers  # noqa: E402

# The conv64 network's weight shapes (encoder, posterior head, decoder).
SHAPES = [(4, 4, 1, 32), (32,), (4, 4, 32, 64), (64,), (16384, 512), (512,), (512, 80), (80,),
          (40, 512), (512,), (512, 16384), (16384,), (4, 4, 64, 64), (64,), (4, 4, 32, 64),
          (32,), (4, 4, 32, 1), (1,)]


def time_update(optimizer, repeats):
    variables = [tf.Variable(tf.random.normal(s)) for s in SHAPES]
    grads = [tf.random.normal(s) for s in SHAPES]

    @tf.function
    def step():
        optimizer.apply_gradients(zip(grads, variables))
        return tf.constant(0.0)

    step(), step()
    start = time.perf_counter()
    for _ in range(repeats):
        step().numpy()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--repeats", type=int, default=30)
    args = a.parse_args()
    print(f"{sum(tf.TensorShape(s).num_elements() for s in SHAPES):,} weights")
    for name, optimizer in (("keras Adam", keras.optimizers.Adam(1e-3)),
                            ("tfvae adam (fused)", optimizers.make("adam", 1e-3))):
        print(f"{name}: {time_update(optimizer, args.repeats):.1f} ms per update", flush=True)


if __name__ == "__main__":
    main()
