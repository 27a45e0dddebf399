"""Training speed of the convolutional VAE (configs/fashion_mnist_conv64.py: conv 32-64, dense
512, latent 40, batch 64) in images/s, per setting: XLA on or off, float32 or mixed bfloat16;
with ``--iw``, also importance-sampled evaluation (k = 1,000) at 28 x 28. Each setting runs in
its own process. Compare with ``benchmarks/conv_torch_twin.py`` (the same network in PyTorch)
one right after the other, on an otherwise idle machine:

    python benchmarks/conv_speed.py [--size=64] [--epochs=3] [--settings=xla_f32,f32,bf16]
    .venv-torchref/bin/python benchmarks/conv_torch_twin.py [--size=64] [--epochs=3]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(HERE, "..", "..", "shared"))
SETTINGS = {  # name: (train.jit_compile, train.precision)
    "xla_f32": ("true", "float32"), "f32": ("false", "float32"),
    "xla_bf16": ("true", "mixed_bfloat16"), "bf16": ("false", "mixed_bfloat16"),
    "auto": ("auto", "auto"),
}


def one(args):
    """One setting, in this process: prints a RESULT line."""
    sys.path.insert(0, os.path.join(HERE, ".."))
    from tfvae.cli import quiet_tensorflow
    quiet_tensorflow()
    import numpy as np
    import tf_keras as keras

    from tfvae import config, data
    from tfvae.training import callbacks, train
    c = config.from_file(os.path.join(HERE, "..", "configs", "fashion_mnist_conv64.py"))
    c.data.source, c.data.idx_dir = "idx", os.path.join(SHARED, "data", "fashion_mnist_sample")
    c.data.test_size, c.data.validation_size, c.data.image_size = 500, 100, args.size
    jit, c.train.precision = SETTINGS[args.one]
    c.train.jit_compile = jit
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0)
    model = train.build_model(c, splits)
    throughput = callbacks.Throughput(c.data.batch_size, splits.steps_per_epoch)
    history = model.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch,
                        epochs=args.epochs, verbose=0, callbacks=[throughput]).history
    out = {"setting": args.one, "size": args.size, "jit": bool(model._jit_compile),
           "first_epoch_s": history["epoch_time_s"][0],
           "train_img_per_s": float(np.median(throughput.rates[1:])),
           "final_loss": history["loss"][-1]}
    if args.iw:
        import time

        from tfvae.results import evaluation
        c.data.image_size = 28
        splits = data.load(c.data, seed=0)
        model = train.build_model(c, splits)
        test = splits.test.unbatch().take(args.iw).batch(20)
        evaluation.log_likelihood(model, test.take(1), 1000, batch_size=20, progress=None)
        start = time.perf_counter()
        evaluation.log_likelihood(model, test, 1000, batch_size=20, progress=None)
        out["iw_k1000_img_per_s_28"] = args.iw / (time.perf_counter() - start)
    print("RESULT " + json.dumps(out), flush=True)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--settings", default="xla_f32,f32,bf16")
    a.add_argument("--iw", type=int, default=0, help="images for the k = 1,000 IS timing")
    a.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.one:
        return one(args)
    for name in args.settings.split(","):
        cmd = [sys.executable, __file__, f"--one={name}", f"--size={args.size}",
               f"--epochs={args.epochs}", f"--iw={args.iw}"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
        print(line[0][7:] if line else f"{name}: failed\n{out.stderr[-2000:]}", flush=True)


if __name__ == "__main__":
    main()
