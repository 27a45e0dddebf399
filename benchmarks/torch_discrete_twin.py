#!/usr/bin/env python3
"""PyTorch twin of tfvae's linear discrete VAE (configs/discrete.py:linear): 200 Bernoulli bits,
q(b|x) and p(x|b) affine (784-200, 200-784), learned prior logits, trained with DisARM (one
antithetic pair) or VIMCO (k = 2), Adam 1e-4, batch 50, on dynamically binarised MNIST read
from the official IDX files (all 60,000 training images), written to
``../shared/bench/ref_torch_vae.py``'s protocol: one line, run right before or after tfvae's
side (benchmarks/discrete_vs_torch.py) on an otherwise idle machine.

  python benchmarks/torch_discrete_twin.py --data ../shared/data/mnist --estimator disarm
prints e.g.
  torch_discrete estimator=disarm epochs=1 batch=50 train_img_per_s=... test_elbo=...
"""
import argparse
import gzip
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx_images(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        b = f.read()
    magic, n, rows, cols = struct.unpack(">4I", b[:16])
    assert magic == 2051, f"{path}: not an IDX image file"
    return np.frombuffer(b[16:], np.uint8).reshape(n, rows * cols) / 255.0


class LinearBernoulliVAE(nn.Module):
    def __init__(self, d=784, k=200):
        super().__init__()
        self.enc, self.dec = nn.Linear(d, k), nn.Linear(k, d)
        self.prior_logits = nn.Parameter(torch.zeros(k))

    def f(self, x, b, logits):
        """log p(x|b) + log p(b) - log q(b|x) per sample (q's logits held)."""
        log_px = -F.binary_cross_entropy_with_logits(self.dec(b), x.expand(b.shape[:-1] + x.shape[-1:]),
                                                     reduction="none").sum(-1)
        log_pb = -F.binary_cross_entropy_with_logits(
            self.prior_logits.expand_as(b), b, reduction="none").sum(-1)
        log_qb = -F.binary_cross_entropy_with_logits(logits.detach().expand_as(b), b,
                                                     reduction="none").sum(-1)
        return log_px + log_pb - log_qb

    def disarm_loss(self, x):
        logits = self.enc(x)
        u = torch.rand_like(logits)
        s = torch.sigmoid(logits).detach()
        b1, b2 = (u > 1 - s).float(), (u < s).float()
        f1, f2 = self.f(x, torch.stack([b1, b2]), logits)  # the pair as one decoder batch
        g = 0.5 * (f1 - f2).detach()[:, None] * (b1 - b2).abs() * (1 - 2 * b2) * \
            torch.sigmoid(logits.abs()).detach()
        return -(0.5 * (f1 + f2)).mean() - (g * logits).sum(-1).mean()

    def vimco_loss(self, x, k=2):
        logits = self.enc(x)
        b = torch.bernoulli(torch.sigmoid(logits).detach().expand((k,) + logits.shape))
        log_q = -F.binary_cross_entropy_with_logits(logits.expand_as(b), b, reduction="none").sum(-1)
        log_w = self.f(x, b, logits) + log_q.detach() - log_q        # log p(x, b) - log q(b|x)
        bound = torch.logsumexp(log_w, 0) - math.log(k)
        others = (log_w.sum(0, keepdim=True) - log_w) / (k - 1)       # swap-one-out geometric mean
        soo = torch.stack([torch.logsumexp(torch.cat([log_w[:s], others[s:s + 1], log_w[s + 1:]]), 0)
                           for s in range(k)]) - math.log(k)
        surrogate = bound + ((bound - soo).detach() * log_q).sum(0)
        return -surrogate.mean()

    @torch.no_grad()
    def elbo(self, x):
        logits = self.enc(x)
        return self.f(x, torch.bernoulli(torch.sigmoid(logits)), logits)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                  "data", "mnist"))
    a.add_argument("--estimator", choices=("disarm", "vimco"), default="disarm")
    a.add_argument("--epochs", type=int, default=1)
    a.add_argument("--batch", type=int, default=50)
    a.add_argument("--lr", type=float, default=1e-4)
    a.add_argument("--threads", type=int, default=0)
    a.add_argument("--seed", type=int, default=0)
    args = a.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr = torch.tensor(read_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz")),
                       dtype=torch.float32)
    xte = torch.tensor(read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")),
                       dtype=torch.float32)
    xte = torch.bernoulli(xte[:1000], generator=torch.Generator().manual_seed(1))
    model = LinearBernoulliVAE()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = model.disarm_loss if args.estimator == "disarm" else model.vimco_loss
    steps, t0 = 0, time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - args.batch + 1, args.batch):
            x = torch.bernoulli(xtr[perm[i:i + args.batch]])
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    dt = time.perf_counter() - t0
    e = model.elbo(xte).mean().item()
    print(f"torch_discrete estimator={args.estimator} epochs={args.epochs} batch={args.batch} "
          f"train_img_per_s={steps * args.batch / dt:.0f} test_elbo={e:.2f}")


if __name__ == "__main__":
    main()
