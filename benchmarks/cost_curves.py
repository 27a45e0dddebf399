#!/usr/bin/env python3
"""Cost curves: training time per epoch and peak memory as functions of the data set's size, the
image size, the latent size and the number of latent layers, and IS time per image as a
function of k; each against the growth it should have. Run on an otherwise idle machine:

    python benchmarks/cost_curves.py --out=docs/cost_curves.png [--json=cost_curves.json]

Every point is its own process (peak resident memory is per process, ``ru_maxrss``): dynamically
binarised MNIST from the IDX files, MLP 512-512, latent 40, one layer, batch 128, 20,000
training images, 2 epochs (the second is timed: the first holds tracing and compilation),
``train.precision`` from ``--precision``; one setting varied at a time. IS: k samples per image
on 100 test images after a warm-up batch.

Expected growth: time per epoch linear in the number of images, and in proportion to the
model's trainable weights as the image size, the latent size and the number of latent
layers change (the dashed lines); IS time per image linear in k. Memory: flat in everything
but the data held in memory (the IDX images, 1 byte per pixel) and the model's variables; IS's
chunks are cache-sized, so flat in k.
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
BASE = {"train_size": 20000, "image_size": 28, "latent": 40, "layers": 1}
AXES = {"train_size": [5000, 10000, 20000, 40000], "image_size": [14, 28, 42, 56],
        "latent": [10, 40, 160, 320], "layers": [1, 2, 3], "k": [100, 300, 1000, 3000]}


def one(point, precision):
    import numpy as np
    import tf_keras as keras

    from tfvae import config as config_lib, data
    from tfvae.models import builder
    from tfvae.results import evaluation
    from tfvae.training import distribute, optimizers
    c = config_lib.get_config()
    c.data.source, c.data.idx_dir = "idx", os.path.join(SHARED, "data", "mnist")
    c.data.pixels, c.data.batch_size, c.data.validation_size = "dynamic", 128, 0
    c.data.train_size = point["train_size"]
    c.data.image_size = 0 if point["image_size"] == 28 else point["image_size"]
    c.model.latent_dims = (point["latent"],) * point["layers"]
    c.model.network.hidden = (512, 512)
    c.train.precision = precision
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0)
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    vae.compile(optimizers.make("adam", 1e-3), steps_per_execution=32,
                jit_compile=distribute.jit_compile(None, "auto", "mlp", precision=precision))
    out = dict(point, weights=int(sum(np.prod(v.shape) for v in vae.trainable_variables)))
    if "k" in point:
        test = splits.test.unbatch().take(120).batch(20)
        evaluation.log_likelihood(vae, test.take(1), point["k"], batch_size=20, progress=None)
        start = time.perf_counter()
        evaluation.log_likelihood(vae, test.skip(1), point["k"], batch_size=20, progress=None)
        out["is_s_per_image"] = (time.perf_counter() - start) / 100
    else:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            vae.fit(splits.train.repeat(), steps_per_epoch=splits.steps_per_epoch, epochs=1,
                    verbose=0)
            times.append(time.perf_counter() - start)
        out["first_epoch_s"], out["epoch_s"] = times
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def measure(precision):
    points = []
    for axis, values in AXES.items():
        for v in values:
            point = dict(BASE, **{axis: v}) if axis != "k" else dict(BASE, k=v)
            out = subprocess.run([sys.executable, __file__, "--one=" + json.dumps(point),
                                  f"--precision={precision}"], capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
            if not line:
                print(f"{point}: failed\n{out.stderr[-1500:]}", flush=True)
                continue
            result = dict(json.loads(line[0][7:]), axis=axis)
            print(json.dumps(result), flush=True)
            points.append(result)
    return points


def plot(points, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    labels = {"train_size": "training images", "image_size": "image side (pixels)",
              "latent": "latent size", "layers": "latent layers", "k": "IS samples k"}
    fig, axes = plt.subplots(1, len(AXES), figsize=(4 * len(AXES), 3.4))
    for ax, axis in zip(axes, AXES):
        rows = [p for p in points if p["axis"] == axis]
        if not rows:
            continue
        x = np.array([p[axis] for p in rows], float)
        key = "is_s_per_image" if axis == "k" else "epoch_s"
        y = np.array([p[key] for p in rows])
        ax.plot(x, y, "o-", label="measured")
        by_weights = axis in ("image_size", "latent", "layers")
        grow = np.array([p["weights"] for p in rows], float) if by_weights else x
        ref = grow / grow[len(x) // 2] * y[len(x) // 2]
        ax.plot(x, ref, "k--", lw=0.8, label="in proportion to the weights" if by_weights
                else "linear")
        ax.set_xlabel(labels[axis])
        ax.set_ylabel("s per image (IS)" if axis == "k" else "s per epoch")
        twin = ax.twinx()
        twin.plot(x, [p["peak_rss_mb"] for p in rows], "s:", color="tab:red", ms=4)
        twin.set_ylabel("peak RSS (MB)", color="tab:red")
        twin.set_ylim(0, max(p["peak_rss_mb"] for p in rows) * 1.3)
        ax.set_ylim(0, max(y.max(), ref.max()) * 1.15)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("tfvae cost curves (MLP 512-512, batch 128; one setting varied at a time)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--out", default="cost_curves.png")
    a.add_argument("--json", default="", help="also write the points here; or, with --plot_only, "
                                              "read them from it")
    a.add_argument("--plot_only", action="store_true")
    a.add_argument("--precision", default="float32")
    a.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.one:
        return one(json.loads(args.one), args.precision)
    if args.plot_only:
        points = json.load(open(args.json))
    else:
        points = measure(args.precision)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(points, f, indent=1)
    plot(points, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
