#!/usr/bin/env python3
"""The PyTorch twin of tfvae's convolutional VAE (configs/fashion_mnist_conv64.py): encoder
conv 4x4/2 32 -> conv 4x4/2 64 -> dense 512 -> 2 x 40 (softplus scales), decoder dense 512 ->
dense to a 64-channel map -> transposed conv 4x4/2 64 -> transposed conv 4x4/2 32 -> conv 4x4 to
the image's channels, ReLU everywhere, Bernoulli p(x|z), Adam 1e-3, batch 64, FashionMNIST
(the IDX sample) resized and binarised at 0.5. Prints training images/s (epochs after the first).

    .venv-torchref/bin/python benchmarks/conv_torch_twin.py [--size=64] [--epochs=3]
"""
import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch
import torch.distributions as td
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("TFVAE_SHARED", os.path.join(HERE, "..", "..", "shared"))


def read_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    _, n, rows, cols = struct.unpack(">4I", raw[:16])
    return np.frombuffer(raw[16:], np.uint8).reshape(n, 1, rows, cols)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--batch", type=int, default=64)
    a.add_argument("--latent", type=int, default=40)
    a.add_argument("--threads", type=int, default=0)
    args = a.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.tensor(read_images(os.path.join(
        SHARED, "data", "fashion_mnist_sample", "train-images-idx3-ubyte.gz")), dtype=torch.float32)
    x = F.interpolate(x, size=(args.size, args.size), mode="bilinear", antialias=True) / 255.0
    x = (x > 0.5).float()
    s, k = -(-args.size // 4), args.latent
    crop = 4 * s - args.size
    enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                        nn.Flatten(), nn.LazyLinear(512), nn.ReLU(), nn.Linear(512, 2 * k))
    dec = nn.Sequential(nn.Linear(k, 512), nn.ReLU(), nn.Linear(512, 64 * s * s), nn.ReLU(),
                        nn.Unflatten(1, (64, s, s)),
                        nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
                        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 1, 4, padding="same"))
    enc(x[:1])  # sizes the lazy layer
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    prior = td.Independent(td.Normal(torch.zeros(k), torch.ones(k)), 1)
    rates = []
    for _ in range(args.epochs):
        perm, start, n = torch.randperm(len(x)), time.perf_counter(), 0
        for i in range(0, len(x) - args.batch + 1, args.batch):
            xb = x[perm[i:i + args.batch]]
            loc, raw = enc(xb).chunk(2, -1)
            q = td.Independent(td.Normal(loc, F.softplus(raw) + 1e-6), 1)
            logits = dec(q.rsample())
            logits = logits[..., crop // 2:crop // 2 + args.size, crop // 2:crop // 2 + args.size]
            log_px = td.Independent(td.Bernoulli(logits=logits), 3).log_prob(xb)
            loss = -(log_px - td.kl_divergence(q, prior)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(xb)
        rates.append(n / (time.perf_counter() - start))
    print(f"torch {torch.__version__} conv twin size={args.size} threads={torch.get_num_threads()} "
          f"train_img_per_s={np.median(rates[1:] or rates):.0f} first_epoch_img_per_s="
          f"{rates[0]:.0f} final_loss={loss.item():.2f}")


if __name__ == "__main__":
    main()
