#!/usr/bin/env python3
"""Where a short run's time goes: the breakdown of ``benchmarks/bench_vs_torch.py``'s run (the
PyTorch reference's model and data) into reading the data, building the model, tracing the
train function, compiling it (XLA), the training steps, evaluation and the IS bound.

    python benchmarks/first_epoch.py [--precision=auto] [--jit_compile=auto] [--epochs=1]

Prints one line of seconds per phase. Tracing is timed as ``get_concrete_function`` of Keras's
train function on the training iterator; compilation as the first call's time beyond a steady
call of the same ``steps_per_execution`` steps.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
T0 = time.perf_counter()

import tf_keras as keras  # noqa: E402

from tfvae import config as config_lib, data  # noqa: E402
from tfvae.models import builder  # noqa: E402
from tfvae.results import evaluation  # noqa: E402
from tfvae.training import distribute, optimizers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
    a.add_argument("--precision", default="float32")
    a.add_argument("--jit_compile", default="auto")
    a.add_argument("--epochs", type=int, default=1)
    a.add_argument("--steps_per_execution", type=int, default=32)
    args = a.parse_args()
    times = {"import": time.perf_counter() - T0}
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        times[name] = times.get(name, 0.0) + now - clock
        clock = now

    c = config_lib.get_config()
    c.data.source, c.data.idx_dir, c.data.pixels = "idx", args.data, "dynamic"
    c.data.validation_size, c.data.batch_size = 0, 128
    c.model.latent_dims, c.model.network.hidden = (40,), (512, 512)
    c.train.precision = args.precision
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0)
    lap("data")
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    jit = distribute.jit_compile(None, args.jit_compile, "mlp", precision=args.precision)
    vae.compile(optimizers.make("adam", 1e-3), steps_per_execution=args.steps_per_execution,
                jit_compile=jit)
    lap("build")
    iterator = iter(splits.train.repeat())
    train_function = vae.make_train_function()
    train_function.get_concrete_function(iterator)
    lap("trace")
    calls = splits.steps_per_epoch * args.epochs // args.steps_per_execution
    train_function(iterator)
    first = time.perf_counter() - clock
    lap("first call")
    for _ in range(calls - 1):
        logs = train_function(iterator)
    float(logs["loss"])
    steady = (time.perf_counter() - clock) / max(calls - 1, 1)
    lap("steps")
    times["compile"] = max(first - steady, 0.0)
    times["steps"] += first - times["compile"]
    del times["first call"]
    test = splits.test.unbatch().take(1000).batch(500)
    evaluation.evaluate(vae, test)
    lap("evaluate")
    evaluation.log_likelihood(vae, test, 100, batch_size=20, progress=None)
    lap("IS k=100")
    images = calls * args.steps_per_execution * c.data.batch_size
    print(f"precision={args.precision} jit={jit} images={images} steady_img_per_s="
          f"{args.steps_per_execution * c.data.batch_size / steady:.0f} "
          + " ".join(f"{k.replace(' ', '_')}={v:.2f}s" for k, v in times.items()), flush=True)


if __name__ == "__main__":
    main()
