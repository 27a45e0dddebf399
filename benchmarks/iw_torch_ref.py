#!/usr/bin/env python3
"""Importance-sampled evaluation speed of the PyTorch reference design (run with torch's python).

The reference (``../shared/bench/ref_torch_vae.py``) evaluates its IWAE bound 20 test images at a
time with all k samples in one tensor; this times exactly its ``iwae`` function (same network:
784-H-H-2L encoder, L-H-H-784 decoder, ReLU, softplus scales) at each k, on random weights (the
arithmetic does not depend on them), and prints images/s. Compare with tfvae's
``benchmarks/throughput.py`` (column "IS k=1000 img/s", same network for ``--models mlp``), one
right after the other on an idle machine.

    .venv-torchref/bin/python benchmarks/iw_torch_ref.py --k 1000,5000 --images 200
"""
import argparse
import math
import time

import torch
import torch.distributions as td
import torch.nn as nn


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--k", default="1000,5000")
    a.add_argument("--images", type=int, default=200)
    a.add_argument("--batch", type=int, default=20, help="images per call (the reference: 20)")
    a.add_argument("--latent", type=int, default=40)
    a.add_argument("--hidden", type=int, default=512)
    args = a.parse_args()
    torch.manual_seed(0)
    D, K, H = 784, args.latent, args.hidden
    enc = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 2 * K))
    dec = nn.Sequential(nn.Linear(K, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, D))
    prior = td.Independent(td.Normal(torch.zeros(K), torch.ones(K)), 1)

    def posterior(x):
        loc, s = enc(x).chunk(2, -1)
        return td.Independent(td.Normal(loc, nn.functional.softplus(s) + 1e-6), 1)

    @torch.no_grad()
    def iwae(x, k):  # the reference's function, verbatim
        q = posterior(x)
        z = q.sample((k,))
        lw = td.Independent(td.Bernoulli(logits=dec(z)), 1).log_prob(x) + prior.log_prob(z) - q.log_prob(z)
        return torch.logsumexp(lw, 0) - math.log(k)

    x = torch.bernoulli(torch.full((args.images, D), 0.2))
    for k in (int(v) for v in args.k.split(",")):
        iwae(x[: args.batch], k)  # warm-up
        t0 = time.perf_counter()
        for i in range(0, args.images, args.batch):
            iwae(x[i: i + args.batch], k)
        dt = time.perf_counter() - t0
        print(f"torch_ref_iw k={k} batch={args.batch} hidden={H} latent={K} "
              f"images_per_s={args.images / dt:.1f} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
