"""A folder larger than memory: peak memory of training on it, and whether the input pipeline
keeps up with training (images/s of the pipeline alone and of training).

    # 200,000 64x64 RGB PNGs made from the FashionMNIST sample (shifted, tinted), 10 classes
    python benchmarks/data_streaming.py --make=/tmp/big --count=200000
    # the measurement, in a 2 GB memory cgroup (cgroup v1, as root) where one can be made
    python benchmarks/data_streaming.py --folder=/tmp/big --memory_limit_mb=2048

Prints one line: images, decoded size, scan time, pipeline images/s, training images/s (the
conv64 network, configs/fashion_mnist_conv64.py), peak resident memory (``ru_maxrss``), and
the cgroup's peak usage where one was used.
"""
import argparse
import gzip
import os
import resource
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(HERE, "..", "..", "shared"))
CGROUP = "/sys/fs/cgroup/memory/tfvae_bench"


def make(folder, count, size):
    """``count`` PNGs: FashionMNIST sample images resized to ``size``, shifted and tinted so that
    every file differs, one subfolder per class."""
    import numpy as np
    from PIL import Image
    base = os.path.join(SHARED, "data", "fashion_mnist_sample")
    with gzip.open(os.path.join(base, "train-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, rows, cols = struct.unpack(">3I", raw[4:16])
    images = np.frombuffer(raw[16:], np.uint8).reshape(n, rows, cols)
    with gzip.open(os.path.join(base, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read()[8:], np.uint8)
    rng = np.random.default_rng(0)
    for k in range(10):
        os.makedirs(os.path.join(folder, f"class{k}"), exist_ok=True)
    resized = np.stack([np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR))
                        for x in images])
    for i in range(count):
        j = i % n
        tint = rng.uniform(0.3, 1.0, 3)
        image = np.roll(resized[j], rng.integers(-4, 5, 2), axis=(0, 1))[..., None] * tint
        Image.fromarray(image.astype(np.uint8)).save(
            os.path.join(folder, f"class{labels[j]}", f"{i:07d}.png"))
    print(f"wrote {count} images to {folder}")


def measure(args):
    sys.path.insert(0, os.path.join(HERE, ".."))
    from tfvae.cli import quiet_tensorflow
    quiet_tensorflow()
    import numpy as np
    import tf_keras as keras

    from tfvae import config, data
    from tfvae.training import callbacks, train
    c = config.from_file(os.path.join(HERE, "..", "configs", "fashion_mnist_conv64.py"))
    c.data.source, c.data.path, c.data.pixels = "folder", args.folder, "dynamic"
    c.data.test_size, c.data.validation_size = 1000, 1000
    c.data.in_memory_mb = args.in_memory_mb
    start = time.perf_counter()
    splits = data.load(c.data, seed=0)
    scan_s = time.perf_counter() - start
    batches = iter(splits.train.repeat())
    next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    pipeline = args.steps * c.data.batch_size / (time.perf_counter() - start)
    keras.utils.set_random_seed(0)
    model = train.build_model(c, splits)
    throughput = callbacks.Throughput(c.data.batch_size, args.steps)
    model.fit(splits.train.repeat(), steps_per_epoch=args.steps, epochs=3, verbose=0,
              callbacks=[throughput])
    total = splits.num_train + splits.num_validation + splits.num_test
    decoded = total * int(np.prod(splits.image_shape)) / 2 ** 20
    line = (f"images={total} decoded_mb={decoded:.0f} in_memory_mb={args.in_memory_mb} "
            f"scan_s={scan_s:.0f} pipeline_img_per_s={pipeline:.0f} "
            f"train_img_per_s={np.median(throughput.rates[1:]):.0f} "
            f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(line, flush=True)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--make", default="")
    a.add_argument("--count", type=int, default=200000)
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--folder", default="")
    a.add_argument("--in_memory_mb", type=int, default=1024)
    a.add_argument("--steps", type=int, default=100)
    a.add_argument("--memory_limit_mb", type=int, default=0)
    a.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.make:
        return make(args.make, args.count, args.size)
    if args.inside or not args.memory_limit_mb:
        return measure(args)
    os.makedirs(CGROUP, exist_ok=True)
    with open(os.path.join(CGROUP, "memory.limit_in_bytes"), "w") as f:
        f.write(str(args.memory_limit_mb * 2 ** 20))
    with open(os.path.join(CGROUP, "memory.max_usage_in_bytes"), "w") as f:
        f.write("0")
    cmd = [sys.executable, __file__, "--inside", f"--folder={args.folder}",
           f"--in_memory_mb={args.in_memory_mb}", f"--steps={args.steps}"]
    proc = subprocess.Popen(cmd, preexec_fn=lambda: open(
        os.path.join(CGROUP, "cgroup.procs"), "w").write(str(os.getpid())))
    code = proc.wait()
    with open(os.path.join(CGROUP, "memory.max_usage_in_bytes")) as f:
        peak = int(f.read()) / 2 ** 20
    print(f"exit {code}; cgroup limit {args.memory_limit_mb} MB, its peak usage {peak:.0f} MB "
          "(page cache of the files read included)")


if __name__ == "__main__":
    main()
