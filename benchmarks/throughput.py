#!/usr/bin/env python3
"""Training and evaluation throughput of tfvae on every device setting this machine offers.

    python benchmarks/throughput.py [--models mlp,cnn] [--batch 128] [--iw_images 500]

For the MLP (784-512-512-40, the PyTorch reference's design) and the CNN (conv 32-64, dense 512)
models, on dynamically binarised MNIST at ``--batch``, it prints one row per (model, strategy,
precision): the first epoch's time (tracing and XLA compilation included), steady training
images/s, importance-sampled evaluation images/s at k = 1,000, and peak memory (host RSS; GPU
peak where there is a GPU). Each row runs in its own process, so its peak memory is its own.

Settings: CPU float32 and mixed_bfloat16 (a CPU with AMX/AVX512-BF16 runs bfloat16 matmuls
natively); on GPUs float32, mixed_float16 and mixed_bfloat16 on one GPU, and the same on all
GPUs through MirroredStrategy when there are several. ``--settings strategy:precision,...``
picks some. An "epoch" is ``--steps`` optimiser steps (default: all of MNIST's 60,000 images).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def settings_here():
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return [("default", "float32"), ("default", "mixed_bfloat16")]
    out = [("default", p) for p in ("float32", "mixed_float16", "mixed_bfloat16")]
    if len(gpus) > 1:
        out += [("mirrored", p) for p in ("float32", "mixed_float16")]
    return out


def one(args):
    """Measures one (model, strategy, precision) in this process; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras
    sys.path.insert(0, REPO)
    from tfvae import config as config_lib, data
    from tfvae.training import callbacks, distribute, optimizers
    from tfvae.results import evaluation
    from tfvae.models import builder

    c = config_lib.get_config()
    c.data.source, c.data.idx_dir, c.data.pixels = "idx", args.data, "dynamic"
    c.data.validation_size, c.data.batch_size = 0, args.batch
    c.model.network.name, c.model.latent_dims, c.model.network.hidden = args.model, (40,), (512, 512)
    if args.model == "cnn":
        c.model.network.hidden = (512,)
    c.train.strategy, c.train.precision = args.strategy, args.precision
    strategy = distribute.build(c.train)
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0)
    steps = min(args.steps or splits.steps_per_epoch, splits.steps_per_epoch)
    with strategy.scope():
        vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
        default, groups = optimizers.for_training(c.train)
        vae.compile(optimizer=default, group_optimizers=groups,
                    steps_per_execution=min(32, steps),
                    jit_compile=distribute.jit_compile(strategy, True))
    start = time.perf_counter()
    history = vae.fit(splits.train.repeat(), steps_per_epoch=steps, epochs=args.epochs,
                      verbose=0, callbacks=[callbacks.Throughput(args.batch, steps)]).history
    times = history["epoch_time_s"]
    train_s = time.perf_counter() - start
    images = steps * args.batch
    test = splits.test.unbatch().take(args.iw_images).batch(args.iw_batch)
    warm = next(iter(test))
    vae.log_likelihood(warm, 1000)  # traces the bound for this batch shape
    t0 = time.perf_counter()
    ll = evaluation.log_likelihood(vae, test, 1000, batch_size=args.iw_batch, progress=None)
    iw_s = time.perf_counter() - t0
    gpu_peak = None
    if tf.config.list_physical_devices("GPU"):
        gpu_peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    print("RESULT " + json.dumps({
        "model": args.model, "strategy": args.strategy, "precision": args.precision,
        "replicas": strategy.num_replicas_in_sync, "batch": args.batch, "steps": steps,
        "first_epoch_s": times[0], "steady_epoch_s": float(np.median(times[1:])),
        "train_img_per_s": images / float(np.median(times[1:])),
        "end_to_end_img_per_s": images * args.epochs / train_s,
        "iw_img_per_s": ll["iw_examples"] / iw_s, "iw_k": 1000,
        "final_loss": history["loss"][-1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_mb": gpu_peak}), flush=True)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "mnist"))
    a.add_argument("--models", default="mlp,cnn")
    a.add_argument("--settings", default="", help="strategy:precision,... ('' = all here)")
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--steps", type=int, default=0, help="steps per epoch (0 = all of MNIST)")
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--iw_images", type=int, default=500)
    a.add_argument("--iw_batch", type=int, default=100)
    a.add_argument("--json", default="", help="also write the rows to this file")
    a.add_argument("--one", default="", help=argparse.SUPPRESS)  # model:strategy:precision
    args = a.parse_args()
    if args.one:
        args.model, args.strategy, args.precision = args.one.split(":")
        return one(args)

    if args.settings:
        settings = [tuple(s.split(":")) for s in args.settings.split(",")]
    else:
        out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
                              "from throughput import settings_here; print(settings_here())"
                              % HERE], capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        settings = eval(out.stdout.strip().splitlines()[-1])  # a list of tuples we printed
    rows = []
    header = (f"{'model':5} {'strategy':9} {'precision':15} {'batch':>5} {'first epoch s':>13} "
              f"{'train img/s':>11} {'IS k=1000 img/s':>15} {'peak RSS MB':>11} {'GPU MB':>7}")
    print(header)
    for model in args.models.split(","):
        for strategy, precision in settings:
            cmd = [sys.executable, __file__, f"--one={model}:{strategy}:{precision}",
                   f"--data={args.data}", f"--batch={args.batch}", f"--steps={args.steps}",
                   f"--epochs={args.epochs}", f"--iw_images={args.iw_images}",
                   f"--iw_batch={args.iw_batch}"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not line:
                print(f"{model:5} {strategy:9} {precision:15} failed: "
                      f"{(out.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            r = json.loads(line[0][len("RESULT "):])
            rows.append(r)
            gpu = f"{r['gpu_peak_mb']:7.0f}" if r["gpu_peak_mb"] is not None else f"{'-':>7}"
            print(f"{model:5} {strategy:9} {precision:15} {r['batch']:5d} "
                  f"{r['first_epoch_s']:13.2f} {r['train_img_per_s']:11.0f} "
                  f"{r['iw_img_per_s']:15.1f} {r['peak_rss_mb']:11.0f} {gpu}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
